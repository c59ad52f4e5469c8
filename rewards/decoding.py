"""Request bodies decoded strictly, through Litestar's own seam for it: a DTO.

Litestar decodes a body to Python values and then converts them with msgspec in lax mode
(`strict=False`, in its signature model and in its DTO backends alike, with no setting to
change it): "100" would pass as 100 cents and a number as a time. Our inbound structs are
strict, so their bodies go through `StrictBody`, a DTO whose `decode_bytes` is msgspec's
typed JSON decoder in its default, strict mode. `StrictBodies`, a serialization plugin,
gives every handler whose `data` is an `Inbound` struct that DTO, so a handler just
annotates `data: PurchaseIn`. Litestar reads the body (413 past the size limit) and calls
the DTO only after the route's check (`rewards.access`) has let the caller in.

Errors are ours: a wrong type or a broken rule is 422 `validation_error` naming the field,
JSON that does not parse (or is not UTF-8, or nests without end) is 400 `malformed_request`.
"""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any, ClassVar, Generic, TypeVar

import msgspec
from litestar.dto import AbstractDTO
from litestar.openapi.spec import Example, Reference, Schema
from litestar.params import BodyKwarg
from litestar.plugins import SerializationPlugin
from litestar.typing import FieldDefinition

from rewards import errors
from rewards.examples import example_of
from rewards.schemas import Inbound

T = TypeVar("T")
_AT = re.compile(r" - at `\$\.?([^`]*)`")


def validation_error(exc: msgspec.ValidationError) -> errors.ValidationFailed:
    """msgspec's message, as our 422 naming the field it points at (`lines[0].amount_cents`)."""
    message = str(exc)
    match = _AT.search(message)
    return errors.ValidationFailed(_AT.sub("", message), field=(match.group(1) or None) if match else None)


class StrictBody(AbstractDTO[T], Generic[T]):
    """Decodes a JSON body into its struct with msgspec's strict rules, and documents it as
    that struct (with its example from `rewards.examples`)."""

    __slots__ = ()
    decoder: ClassVar[msgspec.json.Decoder[Any]]

    @classmethod
    def generate_field_definitions(cls, model_type: type[Any]) -> Generator[Any, None, None]:
        yield from ()  # no transfer model: the struct itself is decoded

    @classmethod
    def detect_nested_field(cls, field_definition: FieldDefinition) -> bool:
        return False

    @classmethod
    def create_for_field_definition(cls, field_definition: FieldDefinition, handler_id: str,
                                    backend_cls: Any = None) -> None:
        cls.decoder = msgspec.json.Decoder(cls.model_type)

    @classmethod
    def create_openapi_schema(cls, field_definition: FieldDefinition, handler_id: str,
                              schema_creator: Any) -> Reference | Schema:
        example = example_of(cls.model_type)
        body = BodyKwarg(examples=[Example(summary="example", value=example)] if example is not None else None)
        return schema_creator.for_field_definition(FieldDefinition.from_annotation(cls.model_type, kwarg_definition=body))

    def decode_bytes(self, value: bytes) -> Any:
        try:
            return self.decoder.decode(value)
        except msgspec.ValidationError as exc:
            raise validation_error(exc) from exc
        except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise errors.MalformedRequest(f"the body is not valid JSON: {exc}") from exc

    def decode_builtins(self, value: Any) -> Any:
        raise errors.MalformedRequest("send the body as JSON (content-type application/json)")


class StrictBodies(SerializationPlugin):
    """Every `Inbound` struct taken as a body is decoded by `StrictBody`."""

    def __init__(self) -> None:
        self._dtos: dict[Any, type[AbstractDTO[Any]]] = {}

    def supports_type(self, field_definition: FieldDefinition) -> bool:
        return field_definition.is_subclass_of(Inbound)

    def create_dto_for_type(self, field_definition: FieldDefinition) -> type[AbstractDTO[Any]]:
        model = field_definition.annotation
        if model not in self._dtos:
            self._dtos[model] = StrictBody[model]  # type: ignore[valid-type]
        return self._dtos[model]
