"""Signed checkpoints of the audit chain, kept outside the database (issue #17 item 5).

A checkpoint says "the chain had ``tree_size`` records, the last one hashed
``head_hash``, and the RFC 6962 Merkle tree over all their hashes has root
``merkle_root``", signed with an Ed25519 key that lives in a file, not in the
database. Checkpoints are files in a write-once directory: created with
``O_EXCL`` and made read-only, never overwritten. Whoever can rewrite the
database (delete the newest records, or edit one and re-chain everything
after it) cannot make the chain agree with a checkpoint signed before, and
``audit_verify`` compares the two.

The Merkle tree (RFC 6962 section 2.1, the certificate-transparency tree) lets
one record's inclusion under a signed root be proven with log2(n) hashes,
without handing the auditor the whole trail (``inclusion_proof`` and
``inclusion_verify``; ``manage.py audit_inclusion_proof``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

FORMAT = "remotebank-audit-checkpoint/1"


# --- RFC 6962 Merkle tree hashes -------------------------------------------------


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


class CompactRange:
    """RFC 6962's MTH(D[n]) computed while leaves stream past, one hash kept per level."""

    def __init__(self) -> None:
        # frontier[i] is the root of a perfect subtree of 2**i leaves still
        # waiting for its right sibling; the binary digits of n say which.
        self.frontier: list[bytes | None] = []
        self.size = 0

    def append(self, leaf: bytes) -> None:
        carry = leaf_hash(leaf)
        level = 0
        while level < len(self.frontier) and (left := self.frontier[level]) is not None:
            carry = node_hash(left, carry)
            self.frontier[level] = None
            level += 1
        if level == len(self.frontier):
            self.frontier.append(carry)
        else:
            self.frontier[level] = carry
        self.size += 1

    def root(self) -> bytes:
        # Fold the perfect subtrees right to left: RFC 6962 splits at the
        # largest power of two below n, so the smaller subtrees nest rightmost.
        root: bytes | None = None
        for subtree in self.frontier:
            if subtree is not None:
                root = subtree if root is None else node_hash(subtree, root)
        return root if root is not None else EMPTY_ROOT


def merkle_root(leaves: Iterable[bytes]) -> bytes:
    tree = CompactRange()
    for leaf in leaves:
        tree.append(leaf)
    return tree.root()


def _largest_power_of_two_below(n: int) -> int:
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def merkle_root_of_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _largest_power_of_two_below(len(hashes))
    return node_hash(merkle_root_of_leaf_hashes(hashes[:k]), merkle_root_of_leaf_hashes(hashes[k:]))


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """PATH(m, D[n]) of RFC 6962 section 2.1.1: the audit path of leaf ``index`` (0-based)."""
    if not 0 <= index < len(leaves):
        raise ValueError("leaf index outside the tree")
    hashes = [leaf_hash(leaf) for leaf in leaves]

    def path(m: int, nodes: Sequence[bytes]) -> list[bytes]:
        if len(nodes) == 1:
            return []
        k = _largest_power_of_two_below(len(nodes))
        if m < k:
            return [*path(m, nodes[:k]), merkle_root_of_leaf_hashes(nodes[k:])]
        return [*path(m - k, nodes[k:]), merkle_root_of_leaf_hashes(nodes[:k])]

    return path(index, hashes)


def inclusion_verify(*, leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 section 2.1.3.2: does ``proof`` show leaf ``index`` under ``root`` of a ``tree_size`` tree?"""
    if not 0 <= index < tree_size:
        return False
    fn, sn = index, tree_size - 1
    result = leaf_hash(leaf)
    for sibling in proof:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            result = node_hash(sibling, result)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            result = node_hash(result, sibling)
        fn >>= 1
        sn >>= 1
    return sn == 0 and result == root


# --- The signing key ---------------------------------------------------------------


def signing_key() -> Ed25519PrivateKey:
    """The Ed25519 key from ``AUDIT_SIGNING_KEY_FILE``; generated there (mode 0600) the first time."""
    path = Path(settings.AUDIT_SIGNING_KEY_FILE)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        pem = Ed25519PrivateKey.generate().private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process generated it first: use theirs
        else:
            with os.fdopen(descriptor, "wb") as handle:
                handle.write(pem)
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} does not hold an Ed25519 private key.")
    return key


def public_key_bytes(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(public_key_bytes(key)).hexdigest()[:16]


# --- Checkpoint files --------------------------------------------------------------


@dataclass(frozen=True)
class Checkpoint:
    tree_size: int
    head_hash: str
    merkle_root: str
    signed_at: str
    key_id: str
    path: Path | None = None

    def body(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "tree_size": self.tree_size,
            "head_hash": self.head_hash,
            "merkle_root": self.merkle_root,
            "signed_at": self.signed_at,
            "key_id": self.key_id,
        }

    def signed_bytes(self) -> bytes:
        return json.dumps(self.body(), sort_keys=True, separators=(",", ":")).encode()


def checkpoint_directory() -> Path:
    return Path(settings.AUDIT_CHECKPOINT_DIR)


def checkpoint_write(*, tree_size: int, head_hash: str, merkle_root: str, signed_at: datetime) -> Checkpoint:
    """Sign and write one checkpoint file; never replaces an existing file."""
    key = signing_key()
    checkpoint = Checkpoint(
        tree_size=tree_size,
        head_hash=head_hash,
        merkle_root=merkle_root,
        signed_at=signed_at.isoformat(),
        key_id=key_id(key.public_key()),
    )
    document = {
        "checkpoint": checkpoint.body(),
        "signature": base64.b64encode(key.sign(checkpoint.signed_bytes())).decode(),
        "public_key": base64.b64encode(public_key_bytes(key.public_key())).decode(),
    }
    directory = checkpoint_directory()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-{tree_size:012d}-{signed_at.strftime('%Y%m%dT%H%M%S%fZ')}.json"
    # O_EXCL: a file of that name is never overwritten; then read-only.
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump(document, handle, sort_keys=True, indent=1)
    return Checkpoint(**{**asdict(checkpoint), "path": path})


class CheckpointInvalid(Exception):
    """A checkpoint file that does not parse or whose signature does not verify under our key."""


def checkpoint_read(path: Path, *, public_key: Ed25519PublicKey | None = None) -> Checkpoint:
    """Parse one checkpoint file and verify its signature under our key (not the key it carries)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        body = document["checkpoint"]
        checkpoint = Checkpoint(
            tree_size=int(body["tree_size"]),
            head_hash=str(body["head_hash"]),
            merkle_root=str(body["merkle_root"]),
            signed_at=str(body["signed_at"]),
            key_id=str(body["key_id"]),
            path=path,
        )
        signature = base64.b64decode(document["signature"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointInvalid(f"{path.name} is not a readable checkpoint: {exc}") from exc
    key = public_key or signing_key().public_key()
    try:
        key.verify(signature, checkpoint.signed_bytes())
    except InvalidSignature as exc:
        raise CheckpointInvalid(f"{path.name}: the signature does not verify under our checkpoint key") from exc
    return checkpoint


def checkpoint_paths() -> Iterator[Path]:
    directory = checkpoint_directory()
    if directory.is_dir():
        yield from sorted(directory.glob("checkpoint-*.json"))


def checkpoint_latest() -> Checkpoint | None:
    """The checkpoint of the largest tree (the newest); raises CheckpointInvalid if it does not verify."""
    paths = list(checkpoint_paths())
    return checkpoint_read(paths[-1]) if paths else None
