"""The registry's refusals, as Confluent's Schema Registry answers them: an HTTP status and a body
`{"error_code": N, "message": "..."}` (its RestApiException subclasses and their codes)."""

from __future__ import annotations

from collections.abc import Callable, Sequence

LEVELS_HELP = ("Valid values are none, backward, forward, full, backward_transitive, "
               "forward_transitive, and full_transitive")


class RegistryError(Exception):
    """One refusal: `status` is the HTTP status, `code` Confluent's error_code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def body(self) -> dict[str, object]:
        return {"error_code": self.code, "message": self.message}


class InvalidSchema(RegistryError):
    """42201: a schema its format's library cannot parse (or a reference it cannot resolve)."""

    def __init__(self, message: str) -> None:
        super().__init__(422, 42201, f"Invalid schema {message}")


def _refusal(status: int, code: int, template: str) -> Callable[..., RegistryError]:
    """A maker of one kind of refusal; its arguments fill `template`'s {0}, {1}."""

    def make(*fields: object) -> RegistryError:
        return RegistryError(status, code, template.format(*fields))

    return make


subject_not_found = _refusal(404, 40401, "Subject '{0}' not found.")
version_not_found = _refusal(404, 40402, "Version {1} not found.")  # (subject, version)
subject_soft_deleted = _refusal(404, 40404, "Subject '{0}' was soft deleted.Set permanent=true "
                                "to delete permanently")
subject_not_soft_deleted = _refusal(404, 40405, "Subject '{0}' was not deleted first before "
                                    "being permanently deleted")
version_soft_deleted = _refusal(404, 40406, "Subject '{0}' Version {1} was soft deleted.Set "
                                "permanent=true to delete permanently")
version_not_soft_deleted = _refusal(404, 40407, "Subject '{0}' Version {1} was not deleted first "
                                    "before being permanently deleted")
subject_config_not_found = _refusal(404, 40408, "Subject '{0}' does not have subject-level "
                                    "compatibility configured")
subject_mode_not_found = _refusal(404, 40409, "Subject '{0}' does not have subject-level mode "
                                  "configured")
invalid_version = _refusal(422, 42202, "The specified version '{0}' is not a valid version id. "
                           "Allowed values are between [1, 2^31-1] and the string \"latest\"")
invalid_compatibility_level = _refusal(422, 42203, "Invalid compatibility level {0}. "
                                       + LEVELS_HELP)
invalid_mode = _refusal(422, 42204, "Invalid mode {0}. Valid values are READWRITE, READONLY, "
                        "READONLY_OVERRIDE and IMPORT")
not_permitted = _refusal(422, 42205, "{0}")
reference_exists = _refusal(422, 42206, "{0}")


SCHEMA_NOT_FOUND = 40403  # also what a client sees for an unknown schema id


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    return RegistryError(404, SCHEMA_NOT_FOUND, "Schema not found" if schema_id is None
                         else f"Schema {schema_id} not found")


def incompatible(subject: str, messages: Sequence[str]) -> RegistryError:
    return RegistryError(409, 409, "Schema being registered is incompatible with an earlier "
                         f"schema for subject \"{subject}\", details: [{', '.join(messages)}]")


def store_error(message: str) -> RegistryError:
    return RegistryError(500, 50001, f"Error while storing the schema: {message}")


def bad_request(message: str) -> RegistryError:
    """A body that is no JSON object of the expected fields (Jersey's own 400/422 answers)."""
    return RegistryError(422, 422, message)
