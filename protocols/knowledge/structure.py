"""The knowledge structure (知识结构, seed 003 2.3.1 item 8): HQ's category tree and its mounting.

Owns: indexing a CategoryTree (code -> parent, depth), the structural rules of a tree
(codes unique, at most MAX_DEPTH levels), checking an item's CategoryPath against a tree,
mounting a tree under a recipient's own knowledge-base root (MountPoint), and the version
gate a recipient applies to a pushed tree (never go back to an older structure).
Must not: read files or the clock, or know where a tree is stored.

The tree travels whole: it is small (tens to hundreds of categories) and a whole-tree
replacement cannot leave a recipient with half a structure. Its Version orders the trees
the way item versions order items (protocols.knowledge.versions).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from protocols.errors import ReasonCode, RejectedMessage
from protocols.knowledge.models import Category, CategoryTree

#: Deepest level of the structure; a CategoryPath has at most this many segments (knowledge.xsd).
MAX_DEPTH = 10
#: The ItemId a recipient's DeliveryReceipt names to confirm (or reject) a knowledge structure
#: version; reserved, so no knowledge item may carry it (protocols.knowledge.rules).
STRUCTURE_ID = "STRUCTURE"


@dataclass(frozen=True)
class TreeIndex:
    """Every category of a tree by code, with its parent's code (None at the top) and depth (1 at the top)."""

    parents: dict[str, str | None]
    depths: dict[str, int]
    names: dict[str, str]

    def path_to(self, code: str) -> tuple[str, ...]:
        """The codes from the top of the tree down to `code`."""
        path: list[str] = []
        at: str | None = code
        while at is not None:
            path.append(at)
            at = self.parents[at]
        return tuple(reversed(path))

    def is_path(self, segments: tuple[str, ...]) -> bool:
        """True when `segments` is a chain from a top-level category down through its children."""
        if not segments or segments[-1] not in self.parents:
            return False
        return self.path_to(segments[-1]) == tuple(segments)


def walk(categories: tuple[Category, ...], parent: str | None = None,
         depth: int = 1) -> Iterator[tuple[Category, str | None, int]]:
    """(category, parent code, depth) for every category, depth first, in display order."""
    for category in categories:
        yield category, parent, depth
        yield from walk(category.children, category.code, depth + 1)


def index(tree: CategoryTree) -> TreeIndex:
    """Index a tree; refuses (FIELD_INVALID) a code used twice or a tree deeper than MAX_DEPTH."""
    parents: dict[str, str | None] = {}
    depths: dict[str, int] = {}
    names: dict[str, str] = {}
    for category, parent, depth in walk(tree.categories):
        if category.code in parents:
            raise RejectedMessage(
                f"Category/Code (分类编码) {category.code!r} appears twice in the knowledge structure "
                f"(version {tree.version}); category codes must be unique in the whole tree.",
                reason=ReasonCode.FIELD_INVALID, field="Category/Code", value=category.code,
            )
        if depth > MAX_DEPTH:
            raise RejectedMessage(
                f"Category {category.code!r} sits at level {depth}; the knowledge structure has at most "
                f"{MAX_DEPTH} levels (知识结构最多 {MAX_DEPTH} 级). Flatten the tree.",
                reason=ReasonCode.FIELD_INVALID, field="Category", value=category.code,
            )
        parents[category.code] = parent
        depths[category.code] = depth
        names[category.code] = category.name
    return TreeIndex(parents, depths, names)


def check_path(path: tuple[str, ...], tree: CategoryTree, field: str = "CategoryPath") -> None:
    """An item's CategoryPath must name a chain of the tree from the top (FIELD_INVALID)."""
    if not index(tree).is_path(tuple(path)):
        raise RejectedMessage(
            f"{field} (知识分类路径) {'/'.join(path)!r} is not a path of the knowledge structure version "
            f"{tree.version}. Use the category codes from a top-level category down, e.g. "
            f"{'/'.join(_first_path(tree))}.",
            reason=ReasonCode.FIELD_INVALID, field=field, value="/".join(path),
        )


def _first_path(tree: CategoryTree) -> tuple[str, ...]:
    path: list[str] = []
    level = tree.categories
    while level:
        path.append(level[0].code)
        level = level[0].children
    return tuple(path)


def mount(tree: CategoryTree, mount_point: str | None) -> CategoryTree:
    """The tree as a recipient receives it: the same categories, hung under its own root."""
    return tree if tree.mount_point == mount_point else tree.model_copy(update={"mount_point": mount_point})


def mounted_path(tree: CategoryTree, path: tuple[str, ...]) -> tuple[str, ...]:
    """Where an item with `path` sits in the recipient's knowledge base: MountPoint first."""
    return ((tree.mount_point,) if tree.mount_point else ()) + tuple(path)


def tree_is_newer(current_version: int, tree: CategoryTree) -> bool:
    """True when `tree` should replace a recipient's structure of `current_version` (0 = none).

    An equal version is a duplicate (nothing to do); an older one is refused with
    STALE_VERSION, as for items: a recipient never goes back to an older structure.
    """
    if tree.version > current_version:
        return True
    if tree.version == current_version:
        return False
    raise RejectedMessage(
        f"CategoryTree version {tree.version} is older than the structure version {current_version} already "
        "held; it is not applied (a recipient never goes back to an older structure).",
        reason=ReasonCode.STALE_VERSION, field="Version", value=tree.version,
    )
