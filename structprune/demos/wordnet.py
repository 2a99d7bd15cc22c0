"""WordNet glosses as (word, definition) pairs, read from Debian's ``wordnet-base`` data files.

A line of ``data.noun`` (and ``data.verb``/``data.adj``/``data.adv``) reads::

    00006024 03 n 01 heterotroph 0 001 @ 00004475 n 0000 | an organism that depends on ...

Field 5 is the synset's first word (underscores for spaces); the text after `` | `` is the gloss:
a definition, optionally followed by ``; "example sentences"``.  Licence lines start with spaces.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

WORDNET_DIR = Path("/usr/share/wordnet")
_EXAMPLES = re.compile(r';\s*"')


@dataclass(frozen=True)
class Gloss:
    """One synset: its first word (spaces restored) and its definition (examples dropped)."""

    word: str
    definition: str


def parse_data_line(line: str) -> Gloss | None:
    """The :class:`Gloss` of one data-file line, or ``None`` for licence/comment lines.

    Example::

        >>> parse_data_line('00006024 03 n 01 heterotroph 0 001 @ 00004475 n 0000 | an organism; "x"')
        Gloss(word='heterotroph', definition='an organism')
    """
    if not line or line[0] == " " or " | " not in line:
        return None
    fields, gloss = line.split(" | ", 1)
    parts = fields.split()
    if len(parts) < 5:
        return None
    word = re.sub(r"\([a-z]+\)$", "", parts[4]).replace("_", " ")
    definition = _EXAMPLES.split(gloss, 1)[0].strip().rstrip(";").strip()
    if not word or not definition:
        return None
    return Gloss(word, definition)


def read_glosses(lines: Iterable[str]) -> list[Gloss]:
    """Every gloss in the lines of a data file, in file order."""
    return [g for g in (parse_data_line(line.rstrip("\n")) for line in lines) if g is not None]


def load_glosses(parts_of_speech: Iterable[str] = ("noun",), root: Path = WORDNET_DIR) -> list[Gloss]:
    """Glosses of the given parts of speech (``noun``, ``verb``, ``adj``, ``adv``) from ``root``.

    Raises ``FileNotFoundError`` naming the Debian package when the files are missing.
    """
    glosses: list[Gloss] = []
    for pos in parts_of_speech:
        path = Path(root) / f"data.{pos}"
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: install WordNet with "
                                    "`apt-get update && apt-get install -y wordnet-base`")
        with open(path, encoding="utf-8", errors="replace") as f:
            glosses.extend(read_glosses(f))
    return glosses


@dataclass(frozen=True)
class GlossSplit:
    """Disjoint samples: ``train`` for distillation, ``retrieval`` (unique words) and
    ``agreement`` (held-out sentences) for evaluation."""

    train: list[Gloss]
    retrieval: list[Gloss]
    agreement: list[Gloss]


def split_glosses(glosses: list[Gloss], n_retrieval: int, n_agreement: int, n_train: int,
                  seed: int = 0) -> GlossSplit:
    """Shuffle with ``seed`` and cut disjoint samples.  Retrieval glosses have distinct words
    (so each definition has exactly one right answer), and no word of the retrieval set is
    defined by any training gloss."""
    order = list(glosses)
    random.Random(seed).shuffle(order)
    retrieval, seen, rest = [], set(), []
    for g in order:
        key = g.word.lower()
        if len(retrieval) < n_retrieval and key not in seen:
            retrieval.append(g)
            seen.add(key)
        else:
            rest.append(g)
    rest = [g for g in rest if g.word.lower() not in seen]
    return GlossSplit(train=rest[n_agreement:n_agreement + n_train], retrieval=retrieval,
                      agreement=rest[:n_agreement])
