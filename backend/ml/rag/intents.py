"""Rule-based intent detection for chat messages (fast, deterministic, explainable)."""

from __future__ import annotations

import re
from enum import StrEnum


class Intent(StrEnum):
    GREETING = "greeting"
    DOSAGE = "dosage"
    EXPLAIN_HEATMAP = "explain_heatmap"
    EXPLAIN_SCORE = "explain_score"
    LIMITATIONS = "limitations"
    NEXT_STEPS = "next_steps"
    RISK = "risk"
    SYMPTOMS = "symptoms"
    CONDITION_INFO = "condition_info"
    OTHER = "other"


# Intents answered from the analysis alone: they never need the reference library.
ANALYSIS_INTENTS = frozenset(
    {
        Intent.GREETING,
        Intent.DOSAGE,
        Intent.EXPLAIN_HEATMAP,
        Intent.EXPLAIN_SCORE,
        Intent.LIMITATIONS,
        Intent.NEXT_STEPS,
    }
)

_MED = (
    r"(?:medicine|medication|meds|drug|antibiotics?|amoxicillin|azithromycin|doxycycline|"
    r"prednisolone|prednisone|steroids?|inhaler|salbutamol|albuterol|ventolin|ibuprofen|"
    r"paracetamol|acetaminophen|tylenol|aspirin|codeine|morphine|oxygen|nebuli[sz]er|pills?|"
    r"tablets?|capsules?|syrup|cough\s+syrup|heparin|warfarin|insulin|vaccine|montelukast|"
    r"theophylline|budesonide|fluticasone|tiotropium|ipratropium|levofloxacin|ciprofloxacin|"
    r"isoniazid|rifampicin|remdesivir|paxlovid|tamiflu|oseltamivir|dexamethasone|"
    r"benzonatate|guaifenesin|dextromethorphan|cetirizine|loratadine|metformin|atorvastatin)"
)
# Ordered: the first matching rule wins, so the more specific intents come first.
_RULES: list[tuple[Intent, re.Pattern[str]]] = [
    (
        Intent.DOSAGE,
        re.compile(
            rf"\d\s*(?:mg|mcg|ml|milligrams?)\b|amount\s+of\s+{_MED}|"
            rf"\b(?:dos(?:e|es|age|ing)|overdose|mg|milligrams?|mcg|ml|how\s+(?:much|many|often)"
            rf"\b.*\b(?:take|use|give|{_MED})|how\s+(?:much|many)\s+{_MED}|(?:take|use|give|"
            rf"double|increase|decrease|reduce)\b.*\b(?:more|less|extra|another|amount)\b.*\b"
            rf"{_MED}|{_MED}\b.*\b(?:how\s+(?:much|many|often)|per\s+day|a\s+day|times|amount|"
            rf"strength|every\s+\d+)|times\s+a\s+day|puffs?\b|(?:maximum|max)\s+(?:amount|dose)|"
            rf"prescri(?:be|ption)\b.*\b(?:amount|strength|how\s+much))",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.EXPLAIN_HEATMAP,
        re.compile(
            r"\b(?:heat\s*-?\s*maps?|saliency|overlay|highlighted|highlights?|hot\s*spots?|"
            r"(?:red|yellow|orange|bright|colou?red)\s+(?:area|areas|region|regions|spot|spots|"
            r"patch|part|parts)|colou?rs?\s+(?:on|in)\s+(?:the|my)\s+(?:image|x-?ray)|"
            r"where\s+(?:did|does|is)\s+(?:it|the\s+model|the\s+ai)\s+(?:look|focus)|"
            r"marked\s+(?:area|region)|boxes?|regions?)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.EXPLAIN_SCORE,
        re.compile(
            r"\b(?:score|scores|scored|anomaly|threshold|percent(?:age)?|probability|"
            r"confidence|number|rating|(?:what|how)\s+(?:does|do|did)\s+(?:my|the|this)\s+"
            r"(?:result|results|report|analysis)\s+(?:mean|say|show)|(?:my|the)\s+results?|"
            r"components?|out\s+of\s+100|high\s+risk\s+(?:label|level)|risk\s+level|"
            r"moderate|flagged|abnormal\s+result)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.LIMITATIONS,
        re.compile(
            r"\b(?:limitations?|accura(?:te|cy)|reliab(?:le|ility)|trust|wrong|mistakes?|errors?|"
            r"false\s+(?:positive|negative|alarm)|miss(?:ed)?|how\s+good|sensitivity|"
            r"specificity|validated|can\s+(?:it|the\s+ai|the\s+model)\s+be|is\s+(?:it|this)\s+"
            r"(?:sure|certain|right|correct)|diagnos(?:e|is)\s+me|replace\s+(?:a|my)\s+doctor)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.NEXT_STEPS,
        re.compile(
            r"\b(?:next\s+steps?|what\s+(?:should|do|can)\s+i\s+do|what\s+now|what\s+happens\s+"
            r"next|should\s+i\s+(?:see|go|call|visit|book|get|worry|be\s+worried)|see\s+a\s+"
            r"(?:doctor|specialist|gp)|follow[\s-]?up|emergency|a\s*&\s*e|urgent|er\b|hospital|"
            r"recommend(?:ation|ations|ed)?|referr(?:al|ed)|more\s+tests?|ct\s+scan)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.RISK,
        re.compile(
            r"\b(?:risks?|risky|dangerous|danger|serious|severe|severity|life[\s-]threatening|"
            r"fatal|deadly|die|dying|mortality|prognosis|chances?|likely|likelihood|odds|"
            r"worried|worry|scared|afraid|concerned|contagious|spread)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.SYMPTOMS,
        re.compile(
            r"\b(?:symptoms?|signs?|feel(?:ing)?|coughs?|coughing|fever|breath(?:less|lessness|"
            r"ing)?|short(?:ness)?\s+of\s+breath|wheez(?:e|ing)|chest\s+pain|phlegm|sputum|"
            r"tired(?:ness)?|fatigue|night\s+sweats)\b",
            re.IGNORECASE,
        ),
    ),
    (
        Intent.CONDITION_INFO,
        re.compile(
            r"\b(?:what\s+(?:is|are|causes?)|tell\s+me\s+(?:about|more)|explain|caused?|causes|"
            r"treat(?:ed|ment|ments|ing)?|cure[ds]?|diagnos(?:ed|tic)|prevent(?:ion|ed)?|"
            r"pneumonia|copd|asthma|bronch\w*|tubercul\w*|tb|emphysema|pneumothorax|"
            r"effusion|pleur\w*|edema|oedema|atelectasis|fibrosis|nodules?|masses?|cancer|"
            r"tumou?rs?|covid(?:-19)?|coronavirus|influenza|flu|embolism|sarcoidosis|"
            r"cardiomegaly|consolidation|infiltrat\w*|lungs?|pulmonary|chest|x-?rays?)\b",
            re.IGNORECASE,
        ),
    ),
]
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening)|greetings|thanks?|"
    r"thank\s+you|cheers|bye|goodbye|ok(?:ay)?|yo)\b[\s!,.?a-z]*$",
    re.IGNORECASE,
)


def detect_intent(message: str) -> Intent:
    """The message's intent; OTHER when no rule matches."""
    text = message.strip()
    if not text:
        return Intent.OTHER
    # A greeting only counts when the message is short: "hi, what does my score mean?" is a
    # question about the score.
    if len(text) <= 40 and _GREETING.match(text):
        return Intent.GREETING
    for intent, pattern in _RULES:
        if pattern.search(text):
            return intent
    return Intent.OTHER
