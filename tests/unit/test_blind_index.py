from __future__ import annotations

from datetime import date

from app.crypto.blind_index import BlindIndexer, normalise_text


def test_normalisation_folds_accents_case_and_punctuation() -> None:
    assert normalise_text("Élodie N'Diaye") == normalise_text("ELODIE NDIAYE") == "elodiendiaye"
    assert normalise_text("Łukasz Straße") == "lukaszstrasse"


def test_variants_share_digests_and_other_people_do_not() -> None:
    indexer = BlindIndexer(b"r" * 32)
    dob = date(1996, 4, 12)
    a = indexer.identity_digests(given_name="Élodie", family_name="N'Diaye", date_of_birth=dob)
    b = indexer.identity_digests(given_name="ELODIE", family_name="NDIAYE", date_of_birth=dob)
    swapped = indexer.identity_digests(given_name="Ndiaye", family_name="Elodie", date_of_birth=dob)
    other = indexer.identity_digests(
        given_name="Élodie", family_name="N'Diaye", date_of_birth=date(1996, 4, 13)
    )
    assert a == b
    assert swapped["full_name_dob"] == a["full_name_dob"]
    assert swapped["family_name_dob"] != a["family_name_dob"]
    assert other["family_name_dob"] != a["family_name_dob"]


def test_indexes_use_separate_keys_and_truncated_digests() -> None:
    indexer = BlindIndexer(b"r" * 32)
    assert indexer.digest("family_name_dob", ["x"]) != indexer.digest("full_name_dob", ["x"])
    assert len(indexer.digest("document", ["SN", "A1"])) == 16
    assert BlindIndexer(b"s" * 32).digest("document", ["SN", "A1"]) != indexer.digest(
        "document", ["SN", "A1"]
    )


def test_no_digest_without_date_of_birth_or_document() -> None:
    # A family name alone would leak too much in a small population: never indexed.
    assert (
        BlindIndexer(b"r" * 32).identity_digests(
            given_name="A", family_name="B", date_of_birth=None
        )
        == {}
    )
