"""The CBV 2.0 vocabulary check and the few parts of the EPCIS JSON-LD context the adapter needs.

EPCIS 2.0 JSON writes standard CBV values as bare words (``shipping``); a producer may also write the full
URI (``https://ref.gs1.org/cbv/BizStep-shipping``), the compact IRI (``cbv:BizStep-shipping``) or the EPCIS
1.x URN (``urn:epcglobal:cbv:bizstep:shipping``). All of them are the same standard value and come out as
the bare word. Any other value is an extension and must be a URI, and a URI in GS1's own CBV namespace
must name a value the standard defines.

The standard lists are the code lists in ``domain/tracking/codelists`` (one source for this check and the
mapping tables). Context URLs are never dereferenced: the standard context is recognised by its address,
and the prefixes of it the adapter needs are below.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CODELISTS = Path(__file__).resolve().parents[2] / "codelists"

# Prefixes of the EPCIS 2.0 JSON-LD context (https://ref.gs1.org/standards/epcis/epcis-context.jsonld).
STANDARD_PREFIXES: Mapping[str, str] = {
    "epcis": "https://ref.gs1.org/epcis/",
    "cbv": "https://ref.gs1.org/cbv/",
    "cbvmda": "urn:epcglobal:cbv:mda:",
    "gs1": "https://gs1.org/voc/",
    "rdfs": "http://www.w3.org/2000/01/rdf-schema#",
    "owl": "http://www.w3.org/2002/07/owl#",
    "xsd": "http://www.w3.org/2001/XMLSchema#",
    "dcterms": "http://purl.org/dc/terms/",
}

# The published context (with or without a version folder) and the address the drafts used.
STANDARD_CONTEXT = re.compile(
    r"^https?://(?:ref\.gs1\.org/standards/epcis/(?:\d+(?:\.\d+)*/)?|gs1\.github\.io/EPCIS/)"
    r"epcis-context\.jsonld$"
)

# Namespaces of the CBV: the published one and the one of the 2.0 drafts.
_CBV_NAMESPACES = ("https://ref.gs1.org/cbv/", "http://ref.gs1.org/cbv/", "https://ns.gs1.org/cbv/")
_CBV_URN_NAMESPACE = "urn:epcglobal:cbv:"

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*:\S+$")


def load_codelist(system: str) -> frozenset[str]:
    """The codes of ``codelists/<system>.txt`` (``code<TAB>meaning`` lines, ``#`` comments)."""
    text = (CODELISTS / f"{system}.txt").read_text(encoding="utf-8")
    return frozenset(
        line.split("\t", 1)[0] for line in text.splitlines() if line.strip() and not line.startswith("#")
    )


@dataclass(frozen=True, slots=True)
class Vocabulary:
    field: str  # the EPCIS field name, for messages
    words: frozenset[str]
    cbv_prefix: str  # the term prefix in the CBV namespace: BizStep-, Disp-, BTT- ...
    urn_prefix: str  # the EPCIS 1.x URN prefix


BIZ_STEP = Vocabulary("bizStep", load_codelist("epcis.bizstep"), "BizStep-", "urn:epcglobal:cbv:bizstep:")
DISPOSITION = Vocabulary(
    "disposition", load_codelist("epcis.disposition"), "Disp-", "urn:epcglobal:cbv:disp:"
)
# Not mapped to milestones, so kept here rather than as code lists; used to read the values, not to reject.
BIZ_TRANSACTION_TYPE = Vocabulary(
    "bizTransaction type",
    frozenset(
        {"bol", "cert", "desadv", "inv", "pedigree", "po", "poc", "prodorder", "recadv", "rma", "testprd"}
        | {"testres", "upevt"}
    ),
    "BTT-",
    "urn:epcglobal:cbv:btt:",
)
SOURCE_DESTINATION_TYPE = Vocabulary(
    "source/destination type",
    frozenset({"owning_party", "possessing_party", "location"}),
    "SDT-",
    "urn:epcglobal:cbv:sdt:",
)
ERROR_REASON = Vocabulary(
    "errorDeclaration reason", frozenset({"did_not_occur", "incorrect_data"}), "ER-", "urn:epcglobal:cbv:er:"
)


def is_uri(value: str) -> bool:
    return bool(_URI.match(value))


def document_prefixes(context: Any) -> dict[str, str]:
    """Prefix → IRI: the standard ones plus those an inline ``@context`` object defines."""
    prefixes = dict(STANDARD_PREFIXES)
    entries = context if isinstance(context, list) else [context]
    for entry in entries:
        if isinstance(entry, dict):
            for name, iri in entry.items():
                if (
                    isinstance(name, str)
                    and not name.startswith("@")
                    and isinstance(iri, str)
                    and is_uri(iri)
                ):
                    prefixes[name] = iri
    return prefixes


def has_standard_context(context: Any) -> bool:
    entries = context if isinstance(context, list) else [context]
    return any(isinstance(entry, str) and STANDARD_CONTEXT.match(entry) for entry in entries)


def expand(value: str, prefixes: Mapping[str, str]) -> str:
    """A compact IRI (``ext1:step``) with a known prefix as its full IRI; anything else unchanged."""
    prefix, sep, rest = value.partition(":")
    if sep and not rest.startswith("//") and prefix in prefixes:
        return prefixes[prefix] + rest
    return value


@dataclass(frozen=True, slots=True)
class Term:
    """A value read against a vocabulary: ``value`` is the bare word for a standard value, the expanded
    URI for an extension; ``error`` says why it is neither."""

    value: str
    standard: bool
    error: str | None = None


def read_term(raw: str, vocabulary: Vocabulary, prefixes: Mapping[str, str]) -> Term:
    if raw in vocabulary.words:
        return Term(raw, standard=True)
    full = expand(raw, prefixes)
    # In a CBV namespace a value is the standard's to define, so it cannot be an extension.
    for namespace, term_prefix in (
        (_CBV_URN_NAMESPACE, vocabulary.urn_prefix),
        *((namespace, namespace + vocabulary.cbv_prefix) for namespace in _CBV_NAMESPACES),
    ):
        if full.startswith(namespace):
            word = full[len(term_prefix) :] if full.startswith(term_prefix) else None
            if word in vocabulary.words:
                return Term(word, standard=True)
            error = (
                f"{vocabulary.field} {raw!r} is in the CBV namespace but is not a CBV 2.0 {vocabulary.field}"
            )
            return Term(raw, standard=False, error=error)
    if is_uri(raw):
        return Term(full, standard=False)
    error = (
        f"{vocabulary.field} {raw!r} is not a CBV 2.0 value; a non-standard (extension) value must be a URI"
    )
    return Term(raw, standard=False, error=error)
