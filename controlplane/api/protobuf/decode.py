"""Decoding of `application/vnd.kubernetes.protobuf` request bodies into JSON-shaped dicts.

A body is the magic `k8s\\x00` followed by a `runtime.Unknown` envelope whose `typeMeta` names
the kind and whose `raw` is the object's own message from the k8s.io `generated.proto` files.
The schemas come from `descriptors.binpb.gz` (extracted from kubectl by
`scripts/extract_proto_descriptors.py`); the result is what Go's `encoding/json` would print for
the Go struct the message came from, so the rest of the server only ever sees JSON shapes.

Two facts the descriptor alone does not say, and where they come from:

- Pointer-ness. gogo-protobuf writes every non-pointer Go field even when it holds the zero value
  (`""`, `0`, `false`, an empty struct), while Go's JSON omits those (`omitempty`), and our
  defaulting treats a present `""` as set. The embedded descriptors keep go-to-protobuf's
  `(gogoproto.nullable) = false` option (field 65001) on exactly the non-pointer fields, so the
  rule is exact: a non-nullable field holding its zero value is dropped; a nullable (pointer)
  field is kept whenever it is on the wire, so `replicas: 0`, `suspend: false` and
  `emptyDir: {}` survive.
- JSON names. The proto field name is the JSON name except for a few historical spellings
  (`uID`, `aPIGroup`, `Name`) and inlined structs (`json:",inline"`, e.g. `Volume.volumeSource`).
  Both are resolved against the upstream OpenAPI definition of the message when there is one
  (`controlplane.api.schemas`), and by the go-to-protobuf naming conventions otherwise.

Errors are `BadRequest`s worded like the upstream protobuf serializer and gogo's generated
`Unmarshal` (a small wire walker runs first, because the Python runtime only says "error
parsing"), wrapped the way the create/update handlers' `transformDecodeError` does when the
caller says which kind the endpoint expects.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gzip
import importlib.resources
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

from controlplane.api import schemas
from controlplane.api.errors import BadRequest

__all__ = [
    "MAGIC",
    "UNKNOWN_FORMAT_MESSAGE",
    "decode_object",
    "go_duration",
    "message_class",
    "message_for",
]

MAGIC = b"k8s\x00"
UNKNOWN_FORMAT_MESSAGE = (
    "the body of the request was in an unknown format - accepted media types include: "
    "application/json, application/yaml, application/vnd.kubernetes.protobuf"
)

_DESCRIPTOR_FILE = "descriptors.binpb.gz"
_GOGO_NULLABLE = 65001
_GOGO_CUSTOMNAME = 65004

_META_V1 = "k8s.io.apimachinery.pkg.apis.meta.v1"
_TIME = f"{_META_V1}.Time"
_MICRO_TIME = f"{_META_V1}.MicroTime"
_DURATION = f"{_META_V1}.Duration"
_FIELDS_V1 = f"{_META_V1}.FieldsV1"
_QUANTITY = "k8s.io.apimachinery.pkg.api.resource.Quantity"
_INT_OR_STRING = "k8s.io.apimachinery.pkg.util.intstr.IntOrString"
_RAW_EXTENSION = "k8s.io.apimachinery.pkg.runtime.RawExtension"
_UNKNOWN = "k8s.io.apimachinery.pkg.runtime.Unknown"

_API_PREFIX = "k8s.io.api."
# Package segment -> API group, where the group is not simply `<segment>.k8s.io`.
_GROUP_EXCEPTIONS = {
    "core": "",
    "apps": "apps",
    "autoscaling": "autoscaling",
    "batch": "batch",
    "extensions": "extensions",
    "policy": "policy",
    "apiserverinternal": "internal.apiserver.k8s.io",
    "flowcontrol": "flowcontrol.apiserver.k8s.io",
    "rbac": "rbac.authorization.k8s.io",
}
# metav1.AddToGroupVersion registers these in every group version; kubectl sends
# e.g. DeleteOptions with the apiVersion of the resource being deleted.
_PER_GROUP_META_KINDS = frozenset(
    {
        "WatchEvent",
        "ListOptions",
        "GetOptions",
        "DeleteOptions",
        "CreateOptions",
        "UpdateOptions",
        "PatchOptions",
    }
)
# ...and these as "unversioned" types, which travel as plain `v1`.
_UNVERSIONED_META_KINDS = frozenset({"Status", "APIVersions", "APIGroupList", "APIGroup", "APIResourceList"})

# Field types by wire type, for the walker (FieldDescriptor.TYPE_* numbers).
_VARINT_TYPES = frozenset({3, 4, 5, 8, 13, 14, 17, 18})  # int64 uint64 int32 bool uint32 enum sint32/64
_FIXED64_TYPES = frozenset({1, 6, 16})  # double fixed64 sfixed64
_FIXED32_TYPES = frozenset({2, 7, 15})  # float fixed32 sfixed32


class _ProtoError(Exception):
    """A decode failure with Go's error text."""


@dataclass(frozen=True)
class _Catalog:
    pool: Any  # descriptor_pool.DescriptorPool
    non_nullable: frozenset[str]  # full field names carrying (gogoproto.nullable) = false
    go_names: dict[str, str]  # full field name -> Go field name (gogoproto.customname)
    group_versions: dict[tuple[str, str], str]  # (group, version) -> proto package


def _field_options(raw: bytes) -> dict[int, int | bytes]:
    """The unknown (gogoproto) options of a field, by extension number."""
    out: dict[int, int | bytes] = {}
    i = 0
    while i < len(raw):
        tag, i = _varint(raw, i)
        wire = tag & 7
        value: int | bytes
        if wire == 0:
            value, i = _varint(raw, i)
        elif wire == 2:
            size, i = _varint(raw, i)
            value, i = raw[i : i + size], i + size
        else:
            i = _skip(raw, i, wire)
            continue
        out[tag >> 3] = value
    return out


def _collect_fields(prefix: str, messages: Any, non_nullable: set[str], go_names: dict[str, str]) -> None:
    for msg in messages:
        full = f"{prefix}.{msg.name}"
        for fld in msg.field:
            opts = _field_options(fld.options.SerializeToString())
            key = f"{full}.{fld.name}"
            if opts.get(_GOGO_NULLABLE) == 0:
                non_nullable.add(key)
            custom = opts.get(_GOGO_CUSTOMNAME)
            if isinstance(custom, bytes):
                go_names[key] = custom.decode()
        _collect_fields(full, msg.nested_type, non_nullable, go_names)


def _group_of(segment: str) -> str:
    return _GROUP_EXCEPTIONS.get(segment, f"{segment}.k8s.io")


@functools.cache
def _catalog() -> _Catalog:
    data = importlib.resources.files(__package__).joinpath(_DESCRIPTOR_FILE).read_bytes()
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(gzip.decompress(data))
    pool = descriptor_pool.DescriptorPool()
    non_nullable: set[str] = set()
    go_names: dict[str, str] = {}
    group_versions: dict[tuple[str, str], str] = {}
    for fdp in fds.file:
        pool.Add(fdp)
        _collect_fields(fdp.package, fdp.message_type, non_nullable, go_names)
        if fdp.package.startswith(_API_PREFIX):
            segment, _, version = fdp.package[len(_API_PREFIX) :].rpartition(".")
            group_versions[(_group_of(segment), version)] = fdp.package
    return _Catalog(pool, frozenset(non_nullable), go_names, group_versions)


def message_for(group: str, version: str, kind: str) -> Any | None:
    """The message Descriptor that carries (group, version, kind), or None if there is none."""
    cat = _catalog()
    candidates: list[str] = []
    package = cat.group_versions.get((group, version))
    if package is not None:
        candidates.append(f"{package}.{kind}")
        if kind in _PER_GROUP_META_KINDS:
            candidates.append(f"{_META_V1}.{kind}")
    if group == "meta.k8s.io" and version == "v1":
        candidates.append(f"{_META_V1}.{kind}")
    if group == "" and version == "v1" and kind in _UNVERSIONED_META_KINDS:
        candidates.append(f"{_META_V1}.{kind}")
    for name in candidates:
        try:
            return cat.pool.FindMessageTypeByName(name)
        except KeyError:
            continue
    return None


@functools.cache
def message_class(full_name: str) -> Any:
    """The generated Python class of a message in the descriptor set (tests build bodies with it)."""
    return message_factory.GetMessageClass(_catalog().pool.FindMessageTypeByName(full_name))


# --- wire-format checks, for Go's error texts ------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    value = 0
    shift = 0
    while True:
        if shift >= 64:
            raise _ProtoError("proto: integer overflow")
        if i >= len(data):
            raise _ProtoError("unexpected EOF")
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value & 0xFFFFFFFFFFFFFFFF, i
        shift += 7


def _length(data: bytes, i: int) -> tuple[int, int]:
    size, i = _varint(data, i)
    if size >= 1 << 63:  # a Go int gone negative
        raise _ProtoError("proto: negative length found during unmarshaling")
    end = i + size
    if end > len(data):
        raise _ProtoError("unexpected EOF")
    return i, end


def _skip(data: bytes, i: int, wire: int) -> int:
    """Skip one unknown field's value, as gogo's skipGenerated does."""
    depth = 0
    while True:
        if wire == 0:
            _, i = _varint(data, i)
        elif wire == 1:
            i += 8
        elif wire == 2:
            _, i = _length(data, i)
        elif wire == 3:
            depth += 1
        elif wire == 4:
            if depth == 0:
                raise _ProtoError("proto: unexpected end of group")
            depth -= 1
        elif wire == 5:
            i += 4
        else:
            raise _ProtoError(f"proto: illegal wireType {wire}")
        if i > len(data):
            raise _ProtoError("unexpected EOF")
        if depth == 0:
            return i
        tag, i = _varint(data, i)
        wire = tag & 7


def _expected_wire_types(field: Any) -> tuple[int, ...]:
    if field.type in (9, 10, 11, 12):  # string, group, message, bytes
        return (2,)
    repeated = field.is_repeated
    if field.type in _VARINT_TYPES:
        return (0, 2) if repeated else (0,)
    if field.type in _FIXED64_TYPES:
        return (1, 2) if repeated else (1,)
    if field.type in _FIXED32_TYPES:
        return (5, 2) if repeated else (5,)
    return (2,)


def _check_wire(data: bytes, desc: Any) -> None:
    """Walk `data` as message `desc`, raising Go's error for the first malformed field."""
    go_names = _catalog().go_names
    i = 0
    while i < len(data):
        tag, i = _varint(data, i)
        number = tag >> 3
        wire = tag & 7
        if wire == 4:
            raise _ProtoError(f"proto: {desc.name}: wiretype end group for non-group")
        if number <= 0 or number >= 1 << 31:
            raise _ProtoError(f"proto: {desc.name}: illegal tag {number} (wire type {wire})")
        field = desc.fields_by_number.get(number)
        if field is None:
            i = _skip(data, i, wire)
            continue
        if wire not in _expected_wire_types(field):
            go_name = go_names.get(field.full_name, field.name[:1].upper() + field.name[1:])
            raise _ProtoError(f"proto: wrong wireType = {wire} for field {go_name}")
        if wire == 2:
            start, i = _length(data, i)
            if field.message_type is not None:
                _check_wire(data[start:i], field.message_type)
        else:
            i = _skip(data, i, wire)


def _parse(data: bytes, desc: Any) -> Any:
    _check_wire(data, desc)
    msg = message_class(desc.full_name)()
    try:
        msg.ParseFromString(data)
    except Exception as exc:  # the runtime's errors have no stable type or text
        raise _ProtoError(f"proto: cannot parse invalid wire-format data: {exc}") from exc
    return msg


# --- JSON view -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _FieldPlan:
    json_name: str
    inline: bool
    pointer: bool


def _lower_first(name: str) -> str:
    return name[:1].lower() + name[1:]


@functools.cache
def _plan(full_name: str) -> dict[str, _FieldPlan]:
    """How each field of a message appears in JSON: its name, whether inlined, pointer or not."""
    cat = _catalog()
    desc = cat.pool.FindMessageTypeByName(full_name)
    definition = schemas.definitions().get("io.k8s." + full_name.removeprefix("k8s.io."))
    props: dict[str, Any] | None = definition.get("properties") if definition else None
    by_lower = {p.lower(): p for p in props} if props else {}
    out: dict[str, _FieldPlan] = {}
    for field in desc.fields:
        pointer = field.full_name not in cat.non_nullable
        name = field.name
        sub = field.message_type
        inline = False
        if props is not None:
            if name in props:
                json_name = name
            elif name.lower() in by_lower:
                json_name = by_lower[name.lower()]
            else:
                json_name = _lower_first(name)
                # An inlined struct: its own fields are the parent's properties.
                inline = (
                    sub is not None
                    and sub.full_name != full_name
                    and any(p.json_name in props for p in _plan(sub.full_name).values())
                )
        else:
            json_name = _lower_first(name)
            inline = sub is not None and not pointer and name == _lower_first(sub.name)
        out[field.name] = _FieldPlan(json_name, inline, pointer)
    return out


_ABSENT = object()


def _is_zero(value: Any) -> bool:
    return value is None or value in ("", 0, False, b"") or value in ({}, [])


def _format_time(seconds: int) -> str:
    try:
        stamp = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise _ProtoError("Time.MarshalJSON: year outside of range [0,9999]") from exc
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _format_micro_time(seconds: int, nanos: int) -> str:
    secs, nanos = divmod(seconds * 1_000_000_000 + nanos, 1_000_000_000)
    return _format_time(secs)[:-1] + f".{nanos // 1000:06d}Z"


def _fraction(value: int, digits: int) -> str:
    whole, frac = divmod(value, 10**digits)
    tail = f"{frac:0{digits}d}".rstrip("0")
    return f"{whole}.{tail}" if tail else str(whole)


def go_duration(nanoseconds: int) -> str:
    """Go's `time.Duration.String()`: `1h0m0s`, `1.5s`, `300ms`, `0s`."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    u = abs(nanoseconds)
    if u < 1000:
        return f"{sign}{u}ns"
    if u < 1_000_000:
        return f"{sign}{_fraction(u, 3)}µs"
    if u < 1_000_000_000:
        return f"{sign}{_fraction(u, 6)}ms"
    seconds, frac = divmod(u, 1_000_000_000)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    text = _fraction(secs * 1_000_000_000 + frac, 9) + "s"
    if hours:
        text = f"{hours}h{minutes}m{text}"
    elif minutes:
        text = f"{minutes}m{text}"
    return sign + text


def _json_raw(raw: bytes) -> Any:
    if raw.startswith(MAGIC):
        try:
            return _decode_envelope(raw)[0]
        except _Failure as failure:
            raise _ProtoError(failure.error) from failure
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise _ProtoError(f"json: error calling MarshalJSON for type *runtime.RawExtension: {exc}") from exc


def _message_value(msg: Any) -> Any:
    """The JSON value of a message; `_ABSENT` for the types whose zero Go prints as null."""
    full_name = msg.DESCRIPTOR.full_name
    if full_name == _TIME:
        # time_proto.go writes nothing for the zero time and drops nanos when reading.
        return _format_time(msg.seconds) if msg.ByteSize() else _ABSENT
    if full_name == _MICRO_TIME:
        return _format_micro_time(msg.seconds, msg.nanos) if msg.ByteSize() else _ABSENT
    if full_name == _DURATION:
        return go_duration(msg.duration)
    if full_name == _QUANTITY:
        return _text(msg.string)
    if full_name == _INT_OR_STRING:
        return _text(msg.strVal) if msg.type == 1 else msg.intVal
    if full_name == _RAW_EXTENSION:
        return _json_raw(msg.raw) if msg.raw else _ABSENT
    if full_name == _FIELDS_V1:
        return _json_raw(msg.Raw) if msg.Raw else _ABSENT
    return _message_dict(msg)


def _text(value: str | bytes) -> str:
    """A proto2 string; the runtime hands back bytes when they are not UTF-8, where Go's JSON
    encoder writes U+FFFD for each bad byte."""
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _scalar_value(field: Any, value: Any) -> Any:
    if field.type == 12:  # bytes: Go's []byte marshals as base64
        return base64.b64encode(value).decode("ascii")
    if field.type == 9:
        return _text(value)
    return value


def _element(field: Any, value: Any) -> Any:
    if field.message_type is not None:
        return _message_value(value)
    return _scalar_value(field, value)


def _message_dict(msg: Any) -> dict[str, Any]:
    plan = _plan(msg.DESCRIPTOR.full_name)
    out: dict[str, Any] = {}
    for field, value in msg.ListFields():
        fp = plan[field.name]
        converted: Any
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            # Go's encoding/json writes map keys sorted.
            entries = sorted(((_text(k), v) for k, v in value.items()), key=lambda kv: kv[0])
            converted = {k: _element(value_field, v) for k, v in entries}
            converted = {k: (None if v is _ABSENT else v) for k, v in converted.items()}
        elif field.is_repeated:
            converted = [None if (e := _element(field, v)) is _ABSENT else e for v in value]
        else:
            converted = _element(field, value)
        if converted is _ABSENT or converted is None:
            continue
        if fp.inline and isinstance(converted, dict):
            out.update(converted)
            continue
        if field.is_repeated:
            if not converted:  # empty lists and maps: nil or omitted in Go's JSON either way
                continue
        elif not fp.pointer and _is_zero(converted):
            # A non-pointer zero value is what omitempty drops. A pointer on the wire was set,
            # so its zero (`replicas: 0`, `emptyDir: {}`) is kept.
            continue
        out[fp.json_name] = converted
    return out


# --- envelope --------------------------------------------------------------------------------


def _summarize(data: bytes, max_length: int = 30) -> str:
    if not data:
        return "<empty>"
    if data[:1] == b"{":
        text = data[:max_length].decode("utf-8", "replace")
        return text + " ..." if len(data) > max_length else text
    text = binascii.hexlify(data[:max_length]).decode("ascii")
    return text + " ..." if len(data) > max_length else text


@dataclass
class _Failure(Exception):
    error: str
    api_version: str | None = None  # None: the envelope itself could not be read
    kind: str = ""
    unknown_type: bool = False


def _go_type_meta(api_version: str, kind: str) -> str:
    return f"runtime.TypeMeta{{APIVersion:{orjson.dumps(api_version).decode()}, Kind:{orjson.dumps(kind).decode()}}}"


def _decode_envelope(
    body: bytes, default_api_version: str = "", default_kind: str = ""
) -> tuple[dict[str, Any], str, str]:
    if not body:
        raise _Failure("empty data")
    if not body.startswith(MAGIC):
        prefix = " ".join(str(b) for b in MAGIC)
        raise _Failure(f"provided data does not appear to be a protobuf message, expected prefix [{prefix}]")
    if len(body) == len(MAGIC):
        raise _Failure("empty body")
    try:
        unknown = _parse(body[len(MAGIC) :], _catalog().pool.FindMessageTypeByName(_UNKNOWN))
    except _ProtoError as exc:
        raise _Failure(str(exc)) from exc
    api_version = _text(unknown.typeMeta.apiVersion)
    kind = _text(unknown.typeMeta.kind) or default_kind
    if not api_version and default_api_version:
        api_version = default_api_version
    if not kind:
        raise _Failure(
            f"Object 'Kind' is missing in '{_go_type_meta(unknown.typeMeta.apiVersion, unknown.typeMeta.kind)}'",
            api_version,
            kind,
        )
    group, _, version = api_version.rpartition("/")
    if not version:
        raise _Failure(
            f"Object 'apiVersion' is missing in '{_go_type_meta(unknown.typeMeta.apiVersion, unknown.typeMeta.kind)}'",
            api_version,
            kind,
        )
    desc = message_for(group, version, kind)
    if desc is None:
        raise _Failure(UNKNOWN_FORMAT_MESSAGE, api_version, kind, unknown_type=True)
    try:
        obj = _message_dict(_parse(unknown.raw, desc))
    except _ProtoError as exc:
        raise _Failure(str(exc), api_version, kind) from exc
    return {"kind": kind, "apiVersion": api_version, **obj}, api_version, kind


def decode_object(body: bytes, *, default_api_version: str = "", default_kind: str = "") -> dict[str, Any]:
    """The object in a Kubernetes protobuf body, as the JSON-shaped dict kubectl would have sent.

    `default_api_version`/`default_kind` are the endpoint's own type: they fill an envelope that
    lacks them (upstream's copyKindDefaults) and, when given, errors are worded like the create
    and update handlers' ("Namespace in version "v1" cannot be handled as a Namespace: ...").
    Raises BadRequest for every malformed body.
    """
    try:
        obj, _, _ = _decode_envelope(body, default_api_version, default_kind)
    except _Failure as failure:
        raise _bad_request(failure, body, default_kind) from None
    return obj


def _bad_request(failure: _Failure, body: bytes, into_kind: str) -> BadRequest:
    if failure.unknown_type or not into_kind:
        return BadRequest(message=failure.error)
    if failure.api_version is not None and failure.kind:
        version = failure.api_version.rpartition("/")[2]
        return BadRequest(
            message=f'{failure.kind} in version "{version}" cannot be handled as a {into_kind}: {failure.error}'
        )
    return BadRequest(
        message=(
            f"the object provided is unrecognized (must be of type {into_kind}): "
            f"{failure.error} ({_summarize(body)})"
        )
    )
