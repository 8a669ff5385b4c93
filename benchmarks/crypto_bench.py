"""Streaming AEAD throughput beside raw AES-GCM and Tink's own Python streaming.

    .venv/bin/python benchmarks/crypto_bench.py [--mib 256] [--rounds 3] [--files DIR]

Every figure is MiB of plaintext per second over the same random buffer, in one
process, rounds interleaved so that a noisy neighbour hurts every row alike; the
best and median round are printed.

* ``AESGCM``: cryptography's AESGCM over 1 MiB pieces of the buffer, output
  discarded (encrypt), or over those pieces' ciphertexts held in memory
  (decrypt). The cipher alone: no headers, no key derivation, no buffering.
* ``strongroom``: ``DataKey.seal`` fed 1 MiB (and 64 KiB) slices of the same
  buffer, ciphertext into a sink that discards it; ``DataKey.open`` reading the
  ciphertext from memory (io.BytesIO), plaintext discarded. Pure CPU.
* ``tink``: Tink's ``StreamingAead`` encrypting and decrypting streams on the
  same key (the reference implementation of the same wire format).
* with ``--files DIR``: seal into, and open from, a real file in DIR (through the
  page cache, no fsync), measured after the in-memory rows, to show what I/O adds.

Target (issue 2): streaming encryption at least 50% of raw AES-GCM.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, cast

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from tink import streaming_aead

from strongroom.config import Environment
from strongroom.crypto.keyring import DataKey, TenantKeyRing
from strongroom.crypto.streaming import object_context

MiB = 1 << 20
TARGET = 0.5


class Discard(io.RawIOBase):
    """A sink that counts what it is given and keeps nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        size = memoryview(data).nbytes
        self.count += size
        return size


def slices(buffer: memoryview, piece: int) -> Iterator[memoryview]:
    return (buffer[i : i + piece] for i in range(0, len(buffer), piece))


class Bench:
    def __init__(self, mib: int, files: Path | None) -> None:
        self.size = mib * MiB
        self.data = os.urandom(self.size)
        self.view = memoryview(self.data)
        self.digest = hashlib.sha256(self.data).digest()
        ring = TenantKeyRing.generate(Environment.TEST, "b" * 32)
        self.key: DataKey = ring.new_data_key("bench")[0]
        self.context = object_context(Environment.TEST, ring.tenant_id, "bench")
        self.tink = self.key.handle.primitive(streaming_aead.StreamingAead)
        self.aesgcm = AESGCM(AESGCM.generate_key(bit_length=256))
        self.files = files
        # Ciphertexts made once, outside the timings, for the decrypt rows.
        self.gcm_pieces = [
            (i.to_bytes(12, "big"), self.aesgcm.encrypt(i.to_bytes(12, "big"), piece, None))
            for i, piece in enumerate(slices(self.view, MiB))
        ]
        sink = io.BytesIO()
        self.key.seal(self.context, slices(self.view, MiB), sink)
        self.sealed = sink.getvalue()
        self.tink_sealed = self._tink_seal_to_memory()

    def _tink_seal_to_memory(self) -> bytes:
        class Keep(io.BytesIO):
            kept = b""

            def close(self) -> None:
                self.kept = self.getvalue()
                super().close()

        sink = Keep()
        with self.tink.new_encrypting_stream(sink, self.context) as stream:
            for piece in slices(self.view, MiB):
                stream.write(piece)
        return sink.kept

    # -- encryption ------------------------------------------------------------------------

    def aesgcm_encrypt(self) -> None:
        for i, piece in enumerate(slices(self.view, MiB)):
            self.aesgcm.encrypt(i.to_bytes(12, "big"), piece, None)

    def seal_1mib(self) -> None:
        sink = Discard()
        self.key.seal(self.context, slices(self.view, MiB), cast(BinaryIO, sink))
        assert sink.count == len(self.sealed)

    def seal_64kib(self) -> None:
        sink = Discard()
        self.key.seal(self.context, slices(self.view, 64 * 1024), cast(BinaryIO, sink))
        assert sink.count == len(self.sealed)

    def tink_encrypt(self) -> None:
        sink = Discard()
        with self.tink.new_encrypting_stream(sink, self.context) as stream:
            for piece in slices(self.view, MiB):
                stream.write(piece)
        assert sink.count == len(self.sealed)

    def seal_to_file(self) -> None:
        assert self.files is not None
        with tempfile.TemporaryFile(dir=self.files) as handle:
            self.key.seal(self.context, slices(self.view, MiB), cast(BinaryIO, handle))
            handle.flush()

    # -- decryption ------------------------------------------------------------------------

    def aesgcm_decrypt(self) -> None:
        for nonce, ciphertext in self.gcm_pieces:
            self.aesgcm.decrypt(nonce, ciphertext, None)

    def open_memory(self) -> None:
        total = 0
        for plain in self.key.open(self.context, io.BytesIO(self.sealed)):
            total += len(plain)
        assert total == self.size

    def tink_decrypt(self) -> None:
        total = 0
        with self.tink.new_decrypting_stream(io.BytesIO(self.sealed), self.context) as stream:
            while chunk := stream.read(MiB):
                total += len(chunk)
        assert total == self.size

    def open_file(self) -> None:
        assert self.files is not None
        path = self.files / "crypto_bench.sealed"
        total = 0
        with path.open("rb") as handle:
            for plain in self.key.open(self.context, handle):
                total += len(plain)
        assert total == self.size

    def check_interop(self) -> None:
        """Both directions decrypt to the original bytes (outside the timings)."""
        with self.tink.new_decrypting_stream(io.BytesIO(self.sealed), self.context) as stream:
            assert hashlib.sha256(stream.read()).digest() == self.digest
        ours = hashlib.sha256()
        for plain in self.key.open(self.context, io.BytesIO(self.tink_sealed)):
            ours.update(plain)
        assert ours.digest() == self.digest


def measure(rows: dict[str, Callable[[], None]], rounds: int, size: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for _ in range(rounds):
        for name, run in rows.items():
            start = time.perf_counter()
            run()
            rates[name].append(size / MiB / (time.perf_counter() - start))
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=256, help="plaintext size in MiB")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per row")
    parser.add_argument("--files", type=Path, help="also seal to and open from a file here")
    args = parser.parse_args()
    if args.files and not args.files.is_dir():
        parser.error(f"--files {args.files} is not a directory")

    bench = Bench(args.mib, args.files)
    bench.check_interop()
    rows: dict[str, Callable[[], None]] = {
        "encrypt  AESGCM, 1 MiB pieces (raw cipher)": bench.aesgcm_encrypt,
        "encrypt  strongroom DataKey.seal, 1 MiB writes": bench.seal_1mib,
        "encrypt  strongroom DataKey.seal, 64 KiB writes": bench.seal_64kib,
        "encrypt  tink StreamingAead (Python)": bench.tink_encrypt,
        "decrypt  AESGCM, 1 MiB pieces (raw cipher)": bench.aesgcm_decrypt,
        "decrypt  strongroom DataKey.open, from memory": bench.open_memory,
        "decrypt  tink StreamingAead (Python)": bench.tink_decrypt,
    }
    rates = measure(rows, args.rounds, bench.size)
    if args.files:
        # Measured apart: writeback of the file rows would slow whatever row ran next.
        file_rows: dict[str, Callable[[], None]] = {
            "encrypt  strongroom DataKey.seal, into a file": bench.seal_to_file,
            "decrypt  strongroom DataKey.open, from a file": bench.open_file,
        }
        (args.files / "crypto_bench.sealed").write_bytes(bench.sealed)
        try:
            rates |= measure(file_rows, args.rounds, bench.size)
        finally:
            (args.files / "crypto_bench.sealed").unlink(missing_ok=True)
        rows |= file_rows

    print(f"{args.mib} MiB, {args.rounds} interleaved rounds, MiB/s of plaintext")
    print(f"{'':50} {'best':>8} {'median':>8}")
    for name in rows:
        print(f"{name:50} {max(rates[name]):8.0f} {statistics.median(rates[name]):8.0f}")

    def ratio(ours: str, raw: str) -> float:
        return statistics.median(rates[ours]) / statistics.median(rates[raw])

    enc = ratio(
        "encrypt  strongroom DataKey.seal, 1 MiB writes",
        "encrypt  AESGCM, 1 MiB pieces (raw cipher)",
    )
    enc64 = ratio(
        "encrypt  strongroom DataKey.seal, 64 KiB writes",
        "encrypt  AESGCM, 1 MiB pieces (raw cipher)",
    )
    dec = ratio(
        "decrypt  strongroom DataKey.open, from memory",
        "decrypt  AESGCM, 1 MiB pieces (raw cipher)",
    )
    print()
    print(f"streaming/AESGCM encrypt (1 MiB writes):  {enc:5.0%}  target >= {TARGET:.0%}: "
          f"{'met' if enc >= TARGET else 'MISSED'}")
    print(f"streaming/AESGCM encrypt (64 KiB writes): {enc64:5.0%}")
    print(f"streaming/AESGCM decrypt:                 {dec:5.0%}")
    print("Tink interop checked both ways on these 256 MiB before timing."
          if args.mib == 256 else "Tink interop checked both ways before timing.")


if __name__ == "__main__":
    main()
