"""Words a drug name in a chart may carry besides the agent's own name."""

from __future__ import annotations

# Words a drug name may carry besides the agent: salts, dose forms, routes, release, packaging.
# Topical or eye forms are deliberately absent, so "tacrolimus ointment" only resembles the agent.
SALTS = frozenset(
    [
        "sodium",
        "disodium",
        "potassium",
        "calcium",
        "hydrochloride",
        "hcl",
        "phosphate",
        "acetate",
        "sulfate",
        "succinate",
        "citrate",
        "monohydrate",
        "anhydrous",
    ]
)
FORM_WORDS = frozenset(
    [
        "oral",
        "tablet",
        "tablets",
        "tab",
        "tabs",
        "capsule",
        "capsules",
        "cap",
        "caps",
        "injection",
        "injectable",
        "solution",
        "suspension",
        "for",
        "intravenous",
        "iv",
        "subcutaneous",
        "sc",
        "sq",
        "intramuscular",
        "im",
        "po",
        "delayed",
        "extended",
        "release",
        "er",
        "xr",
        "xl",
        "hr",
        "dr",
        "auto",
        "injector",
        "prefilled",
        "syringe",
        "vial",
        "pen",
        "kit",
        "modified",
        "mg",
        "g",
        "mcg",
        "ug",
        "ml",
        "unit",
        "units",
        "per",
        "of",
        "in",
    ]
)
# Forms applied to the skin, eye or mucosa: an agent in such a form is not systemic use.
TOPICAL_WORDS = frozenset(
    [
        "topical",
        "ointment",
        "cream",
        "lotion",
        "gel",
        "foam",
        "ophthalmic",
        "eye",
        "drops",
        "cutaneous",
        "transdermal",
        "patch",
        "shampoo",
        "emulsion",
        "otic",
        "rectal",
        "enema",
        "suppository",
    ]
)
