#!/usr/bin/env python3
"""Extract the Kubernetes protobuf schemas embedded in a kubectl binary.

kubectl is built with gogo-protobuf, whose generated code registers every `generated.proto` as a
gzipped `FileDescriptorProto` blob in the binary's data section. This tool scans the binary for
gzip members, keeps those that parse as a `FileDescriptorProto` of a `k8s.io/api/*` or
`k8s.io/apimachinery/*` file, and writes them as one gzipped `FileDescriptorSet`, ordered so that
every file comes after its dependencies (what `DescriptorPool.Add` needs).

The committed `controlplane/api/protobuf/descriptors.binpb.gz` was produced from kubectl v1.33.1
(`/usr/lib/google-cloud-sdk/bin/kubectl.1.33`, Kustomize v5.6.0) with:

    python scripts/extract_proto_descriptors.py /usr/lib/google-cloud-sdk/bin/kubectl.1.33 \
        controlplane/api/protobuf/descriptors.binpb.gz

Output is deterministic (sorted files, gzip mtime 0), so rerunning on the same binary gives the
same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import zlib
from pathlib import Path

from google.protobuf import descriptor_pb2  # type: ignore[import-untyped]

GZIP_MAGIC = b"\x1f\x8b\x08\x00\x00\x00\x00\x00"
WANTED_PREFIXES = ("k8s.io/api/", "k8s.io/apimachinery/")
# Every file imports gogo.proto only for its field options (nullable, customname, casttype...).
# The import is dropped so the set loads into a plain DescriptorPool; the option values stay in
# each FieldOptions as unknown fields, where the decoder reads `gogoproto.nullable` (65001).
GOGO_PROTO = "github.com/gogo/protobuf/gogoproto/gogo.proto"


def _gunzip_prefix(data: bytes, start: int) -> bytes | None:
    """Decompress the gzip member at `start`, ignoring whatever follows it in the binary."""
    decomp = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        # Descriptors are small; 4 MiB of input is far more than any one needs.
        out = decomp.decompress(data[start : start + (4 << 20)])
    except zlib.error:
        return None
    return out if decomp.eof else None


def _parse_descriptor(raw: bytes) -> descriptor_pb2.FileDescriptorProto | None:
    fdp = descriptor_pb2.FileDescriptorProto()
    try:
        fdp.ParseFromString(raw)
    except Exception:  # most gzip members in a binary are not descriptors
        return None
    return fdp


def scan(binary: bytes) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every k8s.io FileDescriptorProto found in `binary`, by file name."""
    found: dict[str, descriptor_pb2.FileDescriptorProto] = {}
    pos = binary.find(GZIP_MAGIC)
    while pos >= 0:
        raw = _gunzip_prefix(binary, pos)
        fdp = _parse_descriptor(raw) if raw else None
        if fdp is not None and fdp.name.startswith(WANTED_PREFIXES) and fdp.package:
            found.setdefault(fdp.name, _without_gogo_import(fdp))
        pos = binary.find(GZIP_MAGIC, pos + 1)
    return found


def _without_gogo_import(fdp: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    if GOGO_PROTO not in fdp.dependency:
        return fdp
    if fdp.public_dependency or fdp.weak_dependency:
        # Index lists would shift under removal; none of the k8s files use them.
        raise ValueError(f"{fdp.name}: public/weak imports are not supported")
    kept = [d for d in fdp.dependency if d != GOGO_PROTO]
    del fdp.dependency[:]
    fdp.dependency.extend(kept)
    return fdp


def dependency_order(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> list[str]:
    """File names sorted so that each comes after the k8s.io files it imports."""
    ordered: list[str] = []
    done: set[str] = set()

    def visit(name: str, stack: tuple[str, ...]) -> None:
        if name in done or name not in files:
            return
        if name in stack:
            raise ValueError(f"import cycle through {name}")
        for dep in sorted(files[name].dependency):
            visit(dep, (*stack, name))
        done.add(name)
        ordered.append(name)

    for name in sorted(files):
        visit(name, ())
    return ordered


def build_set(files: dict[str, descriptor_pb2.FileDescriptorProto]) -> descriptor_pb2.FileDescriptorSet:
    out = descriptor_pb2.FileDescriptorSet()
    for name in dependency_order(files):
        fdp = files[name]
        missing = [d for d in fdp.dependency if d not in files]
        if missing:
            # Non-k8s imports would have to come from protobuf's own well-known types; none do
            # today, so say so loudly rather than write a set that fails to load.
            raise ValueError(f"{name} imports files not in the set: {missing}")
        out.file.append(fdp)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kubectl", type=Path, help="path to a kubectl binary")
    parser.add_argument("output", type=Path, help="where to write the gzipped FileDescriptorSet")
    args = parser.parse_args(argv)
    files = scan(args.kubectl.read_bytes())
    if not files:
        print(f"no k8s.io descriptors found in {args.kubectl}", file=sys.stderr)
        return 1
    fds = build_set(files)
    args.output.write_bytes(
        gzip.compress(fds.SerializeToString(deterministic=True), compresslevel=9, mtime=0)
    )
    print(f"wrote {len(fds.file)} files to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
