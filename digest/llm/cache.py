"""The digest cache: finished paper entries, kept from one run to the next, so that a re-run
(even after a crash) pays for no digest twice."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from pathlib import Path

from digest.errors import DataFileError
from digest.files import atomic_write_text, parse_model, read_bounded, warn_dropped
from digest.llm.prompts import PROMPT_VERSION, fingerprint
from digest.models import Digest, PaperEntry

log = logging.getLogger(__name__)


def cache_key(parts: Mapping[str, object]) -> str:
    """The name of a cache file: the hash of everything that decides what it holds."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class DigestCache:
    """Finished paper entries, keyed by everything that decides a digest.

    The key is the hash of: arXiv ID and version, the hash of the text the LLM read, the prompt
    version and fingerprint, the digest schema and the model. Change any of them and the paper
    is digested again; change none and a re-run (even after a crash) costs no LLM call.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "digests"

    @staticmethod
    def key(arxiv_id: str | None, version: int | None, text: str, model: str) -> str:
        parts = {
            "arxiv_id": arxiv_id,
            "version": version,
            "text_sha256": text_hash(text),
            "prompt": f"{PROMPT_VERSION}:{fingerprint()}",
            "schema": hashlib.sha256(
                json.dumps(Digest.model_json_schema(), sort_keys=True).encode()
            ).hexdigest(),
            "model": model,
        }
        return cache_key(parts)

    def get(self, key: str) -> PaperEntry | None:
        path = self.folder / f"{key}.json"
        try:
            raw = read_bounded(path, folder=self.folder)
        except FileNotFoundError:
            return None
        except DataFileError as error:  # a FIFO, a link out, a file too large: never waited on
            log.warning("%s; the paper is digested again", error)
            return None
        try:
            entry, dropped = parse_model(PaperEntry, path, raw, "cached digest")
        except DataFileError:
            return None  # written by an older digest: digest again
        # The digest itself is good, and paid for: kept, with the bad figure unknown.
        warn_dropped(path, dropped, log.warning)
        return entry

    def put(self, key: str, entry: PaperEntry) -> bool:
        """Cache a finished digest. A cache that cannot be written (a full disk) costs only the
        reuse: the entry stays in memory for the day file, and the run goes on."""
        path = self.folder / f"{key}.json"
        try:
            atomic_write_text(path, entry.model_dump_json(indent=2) + "\n")
        except OSError as error:
            log.warning(
                "could not cache the digest of %s in %s (%s); it goes into the day file all "
                "the same",
                entry.arxiv_id or entry.title,
                self.folder,
                error.strerror or error,
            )
            return False
        return True
