"""Version sync (版本同步): verdicts on reordered, stale, duplicate and revoked deliveries, receipts,
HQ's catalog, and the sync difference (golden, catch-up, tombstones, orphans, 10,000 items)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from knowledge_golden import ITEM, NOW, OLD_ITEM, catalog, golden, tree

from protocols.errors import ReasonCode
from protocols.knowledge import rules, wire
from protocols.knowledge.models import (
    Action,
    ItemRef,
    KnowledgeDelivery,
    KnowledgeItem,
    KnowledgeStatus,
    OrphanProblem,
    ReceiptStatus,
    SyncStatus,
    Tombstone,
)
from protocols.knowledge.versions import (
    Catalog,
    ItemVersions,
    RecipientState,
    Verdict,
    accept,
    answer,
    apply_response,
    catalog_digest,
    diff,
    judge,
)

T0 = datetime(2024, 7, 4, 3, 0, tzinfo=UTC)


def _content(version: int, item_id: str = ITEM) -> KnowledgeDelivery:
    item = golden("delivery_update.xml").item.model_copy(update={"id": item_id, "version": version})
    return KnowledgeDelivery(action=Action.update if version > 1 else Action.publish, recipients=("51",),
                             published_at=T0, item=item)


def _tombstone(version: int, item_id: str = ITEM) -> KnowledgeDelivery:
    return KnowledgeDelivery(action=Action.revoke, recipients=("51",), published_at=T0,
                             tombstone=Tombstone(item_id=item_id, version=version, owner_node="99", revoked_at=T0))


def _run(state: RecipientState, *deliveries: KnowledgeDelivery) -> list[tuple[Verdict, ReasonCode | None]]:
    """Feed deliveries in order, keeping every accepted one; the verdicts and reasons."""
    out = []
    for delivery in deliveries:
        decision = accept(state, delivery)
        state.record(decision)
        out.append((decision.verdict, decision.reason))
    return out


APPLY, REVOKE, DUP, REFUSE = Verdict.APPLY, Verdict.REVOKE, Verdict.DUPLICATE, Verdict.REFUSE
STALE, REVOKED = ReasonCode.STALE_VERSION, ReasonCode.ITEM_REVOKED


# ----------------------------------------------------------------------------- delivery verdicts


def test_in_order_deliveries_apply():
    state = RecipientState("51")
    assert _run(state, _content(1), _content(2)) == [(APPLY, None), (APPLY, None)]
    assert state.get(ITEM) == ItemVersions(delivered=2)


def test_reordered_deliveries_never_regress_a_recipient():
    """Scenario 2: provinces that saw version 2 before version 1 keep version 2."""
    state = RecipientState("45")
    assert _run(state, _content(2), _content(1)) == [(APPLY, None), (REFUSE, STALE)]
    assert state.get(ITEM).held == 2
    decision = accept(state, _content(1))
    assert "older than version 2 already held" in decision.detail
    assert decision.error().reason is STALE and decision.error().field == "Version"


def test_a_recipient_that_missed_an_update_applies_the_next_whole():
    state = RecipientState("51")
    assert _run(state, _content(1), _content(3)) == [(APPLY, None), (APPLY, None)]
    assert state.get(ITEM).delivered == 3


def test_the_same_version_again_is_a_duplicate():
    state = RecipientState("51")
    assert _run(state, _content(2), _content(2)) == [(APPLY, None), (DUP, None)]
    assert accept(state, _content(2)).error() is None


def test_a_revoked_item_never_comes_back():
    state = RecipientState("51")
    verdicts = _run(state, _content(1), _content(2), _tombstone(3),
                    _content(2),   # a delayed update: lower than the tombstone
                    _content(3),   # equal to the tombstone's version
                    _content(9),   # higher: HQ never issues one; the Id is never reused
                    _tombstone(3), _tombstone(5))
    assert verdicts == [(APPLY, None), (APPLY, None), (REVOKE, None), (REFUSE, REVOKED), (REFUSE, REVOKED),
                        (REFUSE, REVOKED), (DUP, None), (DUP, None)]
    assert state.get(ITEM) == ItemVersions(delivered=3, confirmed=0, revoked=3)


def test_a_tombstone_that_overtakes_the_content_still_wins():
    state = RecipientState("51")
    assert _run(state, _tombstone(3), _content(1), _content(2)) == [(REVOKE, None), (REFUSE, REVOKED),
                                                                    (REFUSE, REVOKED)]


def test_a_tombstone_wins_even_over_a_misnumbered_content_version():
    state = RecipientState("51")
    assert _run(state, _content(5), _tombstone(3)) == [(APPLY, None), (REVOKE, None)]
    assert state.get(ITEM).revoked == 3


#: The precise definition: (held, revoked, delivery version, is tombstone) -> verdict, reason.
DEFINITION = [
    (0, None, 1, False, APPLY, None),
    (1, None, 2, False, APPLY, None),
    (1, None, 4, False, APPLY, None),
    (2, None, 2, False, DUP, None),
    (2, None, 1, False, REFUSE, STALE),
    (0, None, 3, True, REVOKE, None),
    (2, None, 3, True, REVOKE, None),   # tombstone above the content: the normal case
    (3, None, 3, True, REVOKE, None),   # equal: tombstone wins
    (5, None, 3, True, REVOKE, None),   # lower: revocation is final
    (2, 3, 1, False, REFUSE, REVOKED),
    (2, 3, 3, False, REFUSE, REVOKED),
    (2, 3, 4, False, REFUSE, REVOKED),
    (2, 3, 3, True, DUP, None),
    (2, 3, 4, True, DUP, None),
]


@pytest.mark.parametrize(("held", "revoked", "version", "tombstone", "verdict", "reason"), DEFINITION)
def test_the_definition(held, revoked, version, tombstone, verdict, reason):
    decision = judge(ItemVersions(delivered=held, revoked=revoked), ITEM, version, tombstone=tombstone)
    assert (decision.verdict, decision.reason) == (verdict, reason)
    assert decision.accepted is (verdict in (APPLY, REVOKE))
    if verdict in (DUP, REFUSE):
        assert decision.after == decision.before  # nothing changes


def test_confirmed_versions_count_as_held():
    assert judge(ItemVersions(delivered=1, confirmed=2), ITEM, 2, tombstone=False).verdict is DUP


# ----------------------------------------------------------------------------- receipts


def test_receipts_raise_the_confirmed_version_and_never_lower_it():
    state = RecipientState("51")
    _run(state, _content(1), _content(2))
    assert state.unconfirmed() == {ITEM: 2}
    v2 = accept(RecipientState("51"), _content(2)).receipt("51", T0)
    assert state.confirm(v2) == ItemVersions(delivered=2, confirmed=2)
    v1 = accept(RecipientState("51"), _content(1)).receipt("51", T0)
    assert state.confirm(v1) == ItemVersions(delivered=2, confirmed=2)  # a late mark for v1
    assert state.unconfirmed() == {}


def test_a_rejected_receipt_confirms_nothing_and_a_mark_may_overtake_the_record():
    state = RecipientState("51")
    stale = golden("delivery_receipt_stale.xml")
    assert state.confirm(stale) == ItemVersions()
    assert state.confirm(golden("delivery_receipt_stale.xml").model_copy(update={
        "receipt_status": ReceiptStatus.accepted, "refusal_code": None, "reason": None})) == ItemVersions(1, 1)
    with pytest.raises(ValueError):
        state.confirm(golden("delivery_receipt.xml"))  # Shanghai's receipt is not Sichuan's


def test_a_decision_gives_the_receipt_the_recipient_sends():
    state = RecipientState("51")
    _run(state, _content(2))
    refused = accept(state, _content(1)).receipt("51", datetime.fromisoformat("2024-07-04T10:36:00+08:00"))
    assert refused.refusal_code == "STALE_VERSION" and refused.receipt_status is ReceiptStatus.rejected
    assert refused.reason.startswith("版本过旧:") and "older than version 2" in refused.reason
    assert rules.validate_receipt(refused, sender="51", now=NOW) == refused
    accepted = accept(RecipientState("31"), golden("delivery_publish.xml")).receipt(
        "31", datetime.fromisoformat("2024-07-02T10:05:12+08:00"))
    assert accepted == golden("delivery_receipt.xml")


# ----------------------------------------------------------------------------- HQ's catalog


def test_hq_catalog_takes_deliveries_by_the_same_rules():
    cat = Catalog(tree=tree())
    assert cat.apply(golden("delivery_update.xml")).verdict is APPLY
    assert cat.apply(golden("delivery_publish.xml")).verdict is REFUSE  # v1 after v2
    assert cat.items[ITEM].version == 2
    old = golden("delivery_revoke.xml")
    assert cat.apply(old).verdict is REVOKE and OLD_ITEM in cat.tombstones
    assert cat.apply(_content(3, OLD_ITEM)).reason is REVOKED
    assert cat.versions() == {ITEM: 2}
    with pytest.raises(ValueError, match="both live and revoked"):
        Catalog({ITEM: cat.items[ITEM]}, {ITEM: old.tombstone})


def test_the_digest_is_sha256_of_sorted_lines():
    import hashlib
    held = {"B": 2, "A": 1}
    assert catalog_digest(held).value == hashlib.sha256(b"A:1\nB:2\n").hexdigest()
    assert catalog_digest(held).item_count == 2
    assert catalog_digest({}).value == hashlib.sha256(b"").hexdigest()
    assert catalog().digest() == golden("sync_response.xml").digest


# ----------------------------------------------------------------------------- the sync difference


def test_the_golden_sync_answer():
    """Sichuan's SOAP CRM was down: it holds v1, the revoked VoLTE item, an item HQ does not know, structure v2."""
    response = answer(catalog(), golden("sync_request.xml"), at=datetime.fromisoformat("2024-07-04T11:00:02+08:00"))
    assert response == golden("sync_response.xml")
    assert [i.version for i in response.items] == [2]
    assert [t.item_id for t in response.tombstones] == [OLD_ITEM]
    assert [(o.item_id, o.problem) for o in response.orphans] == [("KN-51-20240101-0009", OrphanProblem.unknown_item)]
    assert response.category_tree.mount_point == "SC-KB-ROOT" and response.category_tree.version == 3
    wire.validate_xsd(wire.to_xml(response))


def test_a_recipient_that_missed_updates_catches_up_through_diff():
    held = {ITEM: 1, "KN-00-20240115-0003": 1}
    response = diff(catalog(), held, recipient="51", request_serial="1", at=T0, tree_version=3)
    assert response.sync_status is SyncStatus.difference
    assert [(i.id, i.version) for i in response.items] == [(ITEM, 2)]
    assert response.tombstones == () and response.orphans == () and response.category_tree is None
    after = apply_response(held, response)
    assert after == {ITEM: 2, "KN-00-20240115-0003": 1}
    assert catalog_digest(after) == response.digest  # the recipient can check itself
    again = diff(catalog(), after, recipient="51", request_serial="2", at=T0, tree_version=3)
    assert again.sync_status is SyncStatus.in_sync and again.items == ()


def test_a_recipient_with_nothing_gets_everything_live_and_no_tombstones():
    response = diff(catalog(), {}, recipient="51", request_serial="1", at=T0)
    assert [i.id for i in response.items] == ["KN-00-20240115-0003", ITEM]
    assert response.tombstones == ()  # nothing to remove: minimal data volume
    assert response.category_tree.version == 3 and response.category_tree.mount_point is None


def test_a_revoked_item_is_not_resurrected_by_a_sync():
    state = RecipientState("51")
    _run(state, _content(3, OLD_ITEM))
    response = diff(catalog(), {OLD_ITEM: 3}, recipient="51", request_serial="1", at=T0, tree_version=3)
    assert [i.id for i in response.items] == ["KN-00-20240115-0003", ITEM]
    assert [t.version for t in response.tombstones] == [4]
    assert OLD_ITEM not in apply_response({OLD_ITEM: 3}, response)
    decisions = state.record_response(response)
    assert [d.verdict for d in decisions] == [APPLY, APPLY, REVOKE]
    assert accept(state, _content(3, OLD_ITEM)).reason is REVOKED  # a late delivery stays refused
    assert accept(state, _content(9, OLD_ITEM)).reason is REVOKED


def test_a_version_hq_never_issued_is_an_orphan():
    response = diff(catalog(), {ITEM: 7}, recipient="51", request_serial="1", at=T0, tree_version=3)
    assert [(o.item_id, o.version, o.problem) for o in response.orphans] == [(ITEM, 7, OrphanProblem.version_ahead)]
    assert ITEM not in [i.id for i in response.items]


def test_digest_requests():
    cat = catalog()
    matching = golden("sync_request_digest.xml")
    assert matching.digest == cat.digest()
    response = answer(cat, matching, at=T0)
    assert (response.sync_status, response.items, response.category_tree) == (SyncStatus.in_sync, (), None)
    older_tree = matching.model_copy(update={"tree_version": 2})
    response = answer(cat, older_tree, at=T0)
    assert response.sync_status is SyncStatus.difference and response.category_tree.mount_point == "SH-KB-ROOT"
    stale = matching.model_copy(update={"digest": catalog_digest({ITEM: 1, "KN-00-20240115-0003": 1})})
    response = answer(cat, stale, at=T0)
    assert response.sync_status is SyncStatus.list_required and response.items == ()
    assert response.digest == cat.digest()


def test_the_structure_is_recorded_from_a_response():
    state = RecipientState("51", tree_version=2)
    state.record_response(golden("sync_response.xml"))
    assert state.tree_version == 3


# ----------------------------------------------------------------------------- 10,000 items


def _catalog_of(n: int) -> Catalog:
    base = golden("knowledge_item.xml")
    items = {f"KN-{i:06d}": base.model_copy(update={"id": f"KN-{i:06d}", "version": 1 + i % 5}) for i in range(n)}
    tombstones = {}
    for i in range(0, n, 20):  # every 20th item is revoked
        item_id = f"KN-{i:06d}"
        tombstones[item_id] = Tombstone(item_id=item_id, version=items.pop(item_id).version + 1, owner_node="99",
                                        revoked_at=T0)
    return Catalog(items, tombstones, tree())


def test_diff_of_a_10000_item_catalog_is_correct_and_fast():
    cat = _catalog_of(10_000)
    assert len(cat.items) == 9_500 and len(cat.tombstones) == 500
    held: dict[str, int] = {}
    for i in range(0, 10_000, 2):  # the recipient holds every other item...
        item_id = f"KN-{i:06d}"
        live = cat.items.get(item_id)
        version = cat.tombstones[item_id].version - 1 if live is None else live.version
        held[item_id] = version - 1 if i % 4 == 0 and version > 1 else version  # ...some of them outdated
    for i in range(300):
        held[f"LOCAL-{i:04d}"] = 1  # and 300 items HQ never published for it
    held["KN-000001"] = 99  # and one at a version HQ never issued

    started = time.perf_counter()
    response = diff(cat, held, recipient="51", request_serial="1", at=T0, tree_version=3)
    elapsed = time.perf_counter() - started

    expected_send = {i for i, item in cat.items.items() if held.get(i, 0) < item.version}
    expected_tombstones = {i for i in held if i in cat.tombstones}
    assert {i.id for i in response.items} == expected_send
    assert {t.item_id for t in response.tombstones} == expected_tombstones
    assert len(expected_tombstones) == 500  # every revoked item is among those held
    assert {o.item_id for o in response.orphans} == {f"LOCAL-{i:04d}" for i in range(300)} | {"KN-000001"}
    ids = [i.id for i in response.items]
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    after = apply_response(held, response)
    for orphan in response.orphans:
        if orphan.problem is OrphanProblem.unknown_item:
            after.pop(orphan.item_id)
    after["KN-000001"] = cat.items["KN-000001"].version  # the operator's fix of the version_ahead orphan
    assert catalog_digest(after) == response.digest == cat.digest()
    assert elapsed < 1.0, f"diff of 10,000 items took {elapsed:.3f} s"


def test_the_sync_response_of_a_large_catalog_is_valid_xml():
    cat = _catalog_of(500)
    response = diff(cat, {}, recipient="51", request_serial="1", at=T0)
    root = wire.to_xml(response)
    wire.validate_xsd(root)
    assert len(root.find(f"{{{wire.NS}}}Items")) == 475
    assert wire.from_xml(root) == response


def test_items_in_a_response_are_whole_published_versions():
    response = diff(catalog(), {}, recipient="51", request_serial="1", at=T0)
    assert all(isinstance(i, KnowledgeItem) and i.status is KnowledgeStatus.published for i in response.items)
    assert rules.validate_sync_response(response, sender="00", now=NOW + timedelta(days=1)) == response
    assert [ItemRef(item_id=i.id, version=i.version) for i in response.items][0].version == 1
