"""WordNet gloss parsing and the disjoint train / evaluation split."""

from __future__ import annotations

from structprune.demos.wordnet import Gloss, load_glosses, parse_data_line, read_glosses, split_glosses

FIXTURE = """\
  1 This software and database is being provided to you, the LICENSEE, by
  2 Princeton University under the following license.
00001740 03 n 01 entity 0 003 ~ 00001930 n 0000 | that which is perceived or known or inferred to have its own distinct existence (living or nonliving)  
00002137 03 n 02 abstraction 0 abstract_entity 0 010 @ 00001740 n 0000 | a general concept formed by extracting common features from specific examples  
00006484 03 n 01 cell 0 002 @ 00004475 n 0000 | (biology) the basic structural and functional unit of all organisms; they may exist as independent units or make up tissues; "a cell is small"  
00017222 03 n 01 green_plant(a) 0 001 @ 00004475 n 0000 | a living organism lacking the power of locomotion; "plants grow"; "trees"  
"""


def test_parses_words_and_definitions():
    glosses = read_glosses(FIXTURE.splitlines())
    assert glosses == [
        Gloss("entity", "that which is perceived or known or inferred to have its own distinct existence "
                        "(living or nonliving)"),
        Gloss("abstraction", "a general concept formed by extracting common features from specific examples"),
        Gloss("cell", "(biology) the basic structural and functional unit of all organisms; they may exist as "
                      "independent units or make up tissues"),
        Gloss("green plant", "a living organism lacking the power of locomotion"),
    ]


def test_licence_and_malformed_lines_are_skipped():
    assert parse_data_line("  1 This software and database") is None
    assert parse_data_line("") is None
    assert parse_data_line("00001 03 | too few fields") is None


def test_load_glosses_names_the_package_when_missing(tmp_path):
    try:
        load_glosses(("noun",), tmp_path)
    except FileNotFoundError as error:
        assert "apt-get install -y wordnet-base" in str(error)
    else:
        raise AssertionError("expected FileNotFoundError")
    (tmp_path / "data.noun").write_text(FIXTURE)
    assert len(load_glosses(("noun",), tmp_path)) == 4


def test_split_is_disjoint_and_retrieval_words_are_unique():
    glosses = [Gloss(f"w{i % 100}", f"definition {i}") for i in range(400)]
    split = split_glosses(glosses, n_retrieval=20, n_agreement=30, n_train=100, seed=3)
    words = [g.word for g in split.retrieval]
    assert len(words) == 20 == len(set(words))
    assert len(split.agreement) == 30 and len(split.train) == 100
    texts = [set(g.definition for g in part) for part in (split.train, split.retrieval, split.agreement)]
    assert not (texts[0] & texts[1]) and not (texts[0] & texts[2]) and not (texts[1] & texts[2])
    assert not {g.word for g in split.train} & set(words)
    assert split == split_glosses(glosses, 20, 30, 100, seed=3)
