"""The registry's refusals, as Confluent's Schema Registry answers them: an HTTP status and a body
`{"error_code": N, "message": "..."}` (its RestApiException subclasses and their codes)."""

from __future__ import annotations

from collections.abc import Sequence

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


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: int) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found.")


def schema_not_found(schema_id: int | None = None) -> RegistryError:
    return RegistryError(404, 40403, "Schema not found" if schema_id is None
                         else f"Schema {schema_id} not found")


def subject_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(404, 40404, f"Subject '{subject}' was soft deleted.Set "
                         "permanent=true to delete permanently")


def subject_not_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(404, 40405, f"Subject '{subject}' was not deleted first before being "
                         "permanently deleted")


def version_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(404, 40406, f"Subject '{subject}' Version {version} was soft deleted."
                         "Set permanent=true to delete permanently")


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(404, 40407, f"Subject '{subject}' Version {version} was not deleted "
                         "first before being permanently deleted")


def subject_config_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level "
                         "compatibility configured")


def subject_mode_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40409, f"Subject '{subject}' does not have subject-level mode "
                         "configured")


def invalid_version(version: str) -> RegistryError:
    return RegistryError(422, 42202, f"The specified version '{version}' is not a valid version "
                         "id. Allowed values are between [1, 2^31-1] and the string \"latest\"")


def invalid_compatibility_level(level: object) -> RegistryError:
    return RegistryError(422, 42203, f"Invalid compatibility level {level}. {LEVELS_HELP}")


def invalid_mode(mode: object) -> RegistryError:
    return RegistryError(422, 42204, f"Invalid mode {mode}. Valid values are READWRITE, "
                         "READONLY, READONLY_OVERRIDE and IMPORT")


def not_permitted(message: str) -> RegistryError:
    return RegistryError(422, 42205, message)


def reference_exists(message: str) -> RegistryError:
    return RegistryError(422, 42206, message)


def incompatible(subject: str, messages: Sequence[str]) -> RegistryError:
    return RegistryError(409, 409, "Schema being registered is incompatible with an earlier "
                         f"schema for subject \"{subject}\", details: [{', '.join(messages)}]")


def store_error(message: str) -> RegistryError:
    return RegistryError(500, 50001, f"Error while storing the schema: {message}")


def bad_request(message: str) -> RegistryError:
    """A body that is no JSON object of the expected fields (Jersey's own 400/422 answers)."""
    return RegistryError(422, 422, message)
