"""Reading torch.distributed.checkpoint (DCP) directories without running code from them.

DCP stores two kinds of pickle in a checkpoint: the ``.metadata`` file (which FileSystemReader
reads with a plain ``pickle.load``) and the non-tensor values of the state dict, such as an
optimizer's ``lr`` and ``betas`` (which DefaultLoadPlanner reads with
``torch.load(weights_only=False)``). Either runs arbitrary code through ``__reduce__``. Here the
metadata goes through an unpickler that admits only the DCP metadata classes and the few torch
and builtin types they hold, and the values through ``torch.load(weights_only=True)``; tensors
were already read with ``weights_only=True`` by torch itself.
"""

from __future__ import annotations

import builtins
import collections
import io
import pathlib
import pickle
from pathlib import Path
from typing import Any

import torch
import torch.distributed.checkpoint.filesystem as dcp_fs
import torch.distributed.checkpoint.metadata as dcp_md
from torch.distributed.checkpoint import DefaultLoadPlanner, FileSystemReader
from torch.distributed.checkpoint._traverse import set_element
from torch.distributed.checkpoint.api import CheckpointException
from torch.distributed.checkpoint.planner import ReadItem

from gristmill.errors import InputError

METADATA = ".metadata"
# Every global a DCP .metadata pickle of torch 2.x refers to (listed from real checkpoints with
# pickletools); torch dtypes are admitted separately below. Each is a plain data class, an enum,
# or a lookup by name: constructing one runs no user-chosen code.
_ALLOWED: dict[str, frozenset[str]] = {
    "torch.distributed.checkpoint.metadata": frozenset({
        "Metadata", "MetadataIndex", "StorageMeta", "TensorProperties", "TensorStorageMetadata",
        "ChunkStorageMetadata", "BytesStorageMetadata", "_MEM_FORMAT_ENCODING"}),
    "torch.distributed.checkpoint.filesystem": frozenset({"_StorageInfo"}),
    "torch.serialization": frozenset({"_get_layout"}),
    "torch": frozenset({"Size"}),
    "pathlib": frozenset({"Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath",
                          "PureWindowsPath"}),
    "collections": frozenset({"OrderedDict"}),
    "builtins": frozenset({"set", "frozenset", "tuple", "list", "dict"}),
}
_MODULES = {"torch.distributed.checkpoint.metadata": dcp_md, "torch.distributed.checkpoint.filesystem": dcp_fs,
            "torch.serialization": torch.serialization, "torch": torch, "pathlib": pathlib,
            "collections": collections, "builtins": builtins}


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list: the file is not checkpoint metadata as DCP writes it."""


class _MetadataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if name in _ALLOWED.get(module, ()):
            return getattr(_MODULES[module], name)
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        raise _Refused(f"it refers to {module}.{name}, which is not a checkpoint metadata type")

    def persistent_load(self, pid: Any) -> Any:
        raise _Refused("it holds a persistent reference, which checkpoint metadata never does")


def read_metadata(ckpt: Path) -> dcp_md.Metadata:
    """The DCP metadata of checkpoint directory ``ckpt``, checked; InputError if it is not that."""
    path = Path(ckpt) / METADATA
    try:
        with path.open("rb") as f:
            md = _MetadataUnpickler(f).load()
    except _Refused as e:
        raise InputError(f"{path}: refusing to load checkpoint metadata: {e}") from None
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError,
            KeyError, IndexError, MemoryError) as e:
        raise InputError(f"{path}: unreadable checkpoint metadata ({type(e).__name__}: {e})") from None
    if not isinstance(md, dcp_md.Metadata) or not isinstance(md.storage_data, dict):
        raise InputError(f"{path}: not checkpoint metadata (a {type(md).__name__})")
    for info in md.storage_data.values():
        # a data file is one plain name in the checkpoint directory, never a path elsewhere
        name = getattr(info, "relative_path", None)
        if (not isinstance(info, dcp_fs._StorageInfo) or not isinstance(name, str) or not name
                or name != Path(name).name or name in (".", "..") or "\\" in name
                or not isinstance(info.offset, int) or not isinstance(info.length, int)
                or info.offset < 0 or info.length < 0):
            raise InputError(f"{path}: checkpoint metadata names a data file outside the checkpoint "
                             f"or an invalid range: {name!r}")
    return md


class SafeReader(FileSystemReader):
    """A FileSystemReader whose metadata is the already-checked result of :func:`read_metadata`."""

    def __init__(self, ckpt: Path, metadata: dcp_md.Metadata) -> None:
        super().__init__(str(ckpt))
        self._metadata = metadata

    # No **kwargs on purpose: DCP then never falls back to a rank-local ``__R.metadata`` pickle.
    def read_metadata(self) -> dcp_md.Metadata:  # type: ignore[override]
        md = self._metadata
        if getattr(md, "storage_meta", None) is None:
            md.storage_meta = dcp_md.StorageMeta()
        md.storage_meta.load_id = self.load_id
        return md


class SafeLoadPlanner(DefaultLoadPlanner):
    """DefaultLoadPlanner, except that non-tensor values are read with ``weights_only=True``."""

    def load_bytes(self, read_item: ReadItem, value: io.BytesIO) -> None:
        try:
            obj = torch.load(value, weights_only=True)
        except pickle.UnpicklingError as e:
            # torch's message is a paragraph of advice; its one useful line names the global
            why = next((ln.strip() for ln in str(e).splitlines()
                        if "GLOBAL" in ln or "WeightsUnpickler error" in ln), "not loadable with weights_only")
            raise _Refused(f"value {read_item.dest_index.fqn!r} is not plain data ({why[:200]})") from None
        if self.flatten_state_dict:
            set_element(self.original_state_dict, self.mappings[read_item.dest_index.fqn], obj)
        else:
            self.state_dict[read_item.dest_index.fqn] = obj


def load(state: dict[str, Any], ckpt: Path, *, no_dist: bool) -> None:
    """``dcp.load(state, ckpt)`` with the checked metadata and planner; InputError on a bad checkpoint."""
    import torch.distributed.checkpoint as dcp

    reader = SafeReader(ckpt, read_metadata(ckpt))
    try:
        dcp.load(state, storage_reader=reader, planner=SafeLoadPlanner(), no_dist=no_dist)
    except CheckpointException as e:
        exc = next((f[0] for f in e.failures.values()), None) if isinstance(e.failures, dict) else None
        if isinstance(exc, InputError):
            raise exc from None
        if isinstance(exc, _Refused):
            raise InputError(f"{ckpt}: refusing to load checkpoint data: {exc}") from None
        detail = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200] if exc else "unknown failure"
        raise InputError(f"{ckpt}: unreadable or mismatched checkpoint ({detail}); use --force to start "
                         "over") from None
