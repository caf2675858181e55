"""Test helpers for talking to the QBO emulator (fixtures live in conftest.py)."""

from __future__ import annotations

import requests


class EmulatorUI:
    """Changes made 'as a QBO user would in the QBO UI', through the emulator's control API."""

    def __init__(self, emulator, realm_id: str):
        self.emulator = emulator
        self.realm_id = realm_id
        self.base = f"{emulator.base_url}/_emulator/realms/{realm_id}"

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = requests.request(method, f"{self.base}/{path}", json=body, timeout=10)
        assert response.status_code < 300, response.text
        return response.json() if response.content else {}

    def rows(self, entity: str) -> list[dict]:
        return self._call("GET", entity.lower()).get(entity, [])

    def create(self, entity: str, body: dict) -> dict:
        return self._call("POST", entity.lower(), body)[entity]

    def update(self, entity: str, body: dict) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=update", body)[entity]

    def void(self, entity: str, obj_id: str) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=void", {"Id": obj_id})[entity]

    def delete(self, entity: str, obj_id: str) -> dict:
        return self._call("POST", f"{entity.lower()}?operation=delete", {"Id": obj_id})[entity]

    def find(self, entity: str, **match) -> dict | None:
        for row in self.rows(entity):
            if all(row.get(k) == v for k, v in match.items()):
                return row
        return None
