"""JSON schemas of the configuration files, generated from the pydantic models.

Editors (VS Code's YAML extension, JetBrains) complete and validate while typing when a
file starts with `# yaml-language-server: $schema=...` or the editor maps the files
(docs/integrators/editor.md); tests/test_schemas.py checks the committed schemas are current.
Must not: write anywhere but the folder it is given.
"""

from __future__ import annotations

import json
from pathlib import Path

from hub.flows.knowledge_settings import KnowledgeSettings
from hub.flows.order_settings import OrderSettings
from hub.message_types import TypesFile
from hub.nodes import NodesFile
from hub.route_fixtures import FixturesFile
from hub.routes import RoutesFile
from hub.settings import Settings

MODELS = {
    "nodes.schema.json": NodesFile,
    "routes.schema.json": RoutesFile,
    "message_types.schema.json": TypesFile,
    "hub.schema.json": Settings,
    "fixtures.schema.json": FixturesFile,
    "orders.schema.json": OrderSettings,
    "knowledge.schema.json": KnowledgeSettings,
}


def render(model) -> str:
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, model in MODELS.items():
        path = folder / name
        path.write_text(render(model), encoding="utf-8")
        written.append(path)
    return written
