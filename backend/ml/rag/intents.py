"""Rule-based intent detection for chat messages (fast, deterministic, explainable)."""

from __future__ import annotations

import re
from enum import StrEnum

from backend.ml.rag.normalise import folded_variants


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
    HISTORY = "history"
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
        Intent.HISTORY,
    }
)

_MED = (
    r"(?:medicine|medication|meds|drug|antibiotics?|amoxicillin|azithromycin|doxycycline|"
    r"prednisolone|prednisone|steroids?|inhaler|salbutamol|albuterol|ventolin|ibuprofen|"
    r"paracetamol|acetaminophen|tylenol|aspirin|codeine|morphine|oxygen|nebuli[sz]er|pills?|"
    r"tablets?|capsules?|syrup|cough\s+syrup|heparin|warfarin|insulin|vaccine|montelukast|"
    r"theophylline|budesonide|fluticasone|tiotropium|ipratropium|levofloxacin|ciprofloxacin|"
    r"isoniazid|rifampicin|remdesivir|paxlovid|tamiflu|oseltamivir|dexamethasone|"
    r"benzonatate|guaifenesin|dextromethorphan|cetirizine|loratadine|metformin|atorvastatin|"
    # stems, so other spellings and languages count too (amoxicilina, azitromicina, cortisone)
    r"amoxi\w*|azit?hromy?ci\w*|doxy\w*|predni\w*|cortico\w*|cortison\w*|ibupro\w*|"
    r"paracet\w*|acetamin\w*|codein\w*|morphin\w*|antibi[oó]ti\w*|medica\w*|medicament\w*|"
    r"m[eé]dicament\w*|farmac\w*|inhalador|inhalateur|pastillas?|comprimid\w*|tabletas?|"
    r"comprim[eé]s?|tabletten?|compresse|jarabe|sirop|sciroppo|penicil\w*|ceph\w*|cef\w*|"
    r"clarithro\w*|steroid\w*|esteroid\w*|inhaler\w*)"
)
# A regimen, course or schedule of a medicine is a dose question whatever the wording
# ("Summarise the usual adult amoxicillin regimen").
_REGIMEN = (
    r"\b(?:regimen|regime|posology|titrat\w*|taper(?:ing)?|dosing|dosage|dose|doses|"
    r"loading\s+dose|maintenance\s+dose)\b|"
    rf"\b(?:course|schedule|plan|protocol|cycle|routine|duration)\b[^.?!]{{0,40}}\b{_MED}|"
    rf"{_MED}\b[^.?!]{{0,40}}\b(?:course|schedule|plan|protocol|cycle|routine)\b|"
    r"\b(?:treatment|drug|medication|medicine|antibiotic|steroid)\s+(?:course|schedule|plan)\b|"
    r"(?<![\w.])\d+(?:\s*(?:mg|g|ml))?\s+(?:once|twice|thrice|\w+\s+times)\b|"
    rf"\bhow\s+to\s+(?:take|use|give)\b[^.?!]*{_MED}|"
    rf"{_MED}[^.?!]{{0,30}}\b(?:al|por|par|pro|ao|a)\s+(?:d[ií]a|jour|tag|dia|giorno)\b|"
    rf"(?!oxygen\b){_MED}\b[^.?!\d]{{0,20}}\d(?!\d*\s*(?:%|days?|weeks?|months?|years?))|"
    rf"\b(?:when|how|how\s+long)\s+(?:should|do|can|must)\s+(?:i|we|you|he|she|they)\s+"
    rf"(?:take|use|give|stop|continue)\b"
)
# The same questions in Spanish, French, German, Portuguese and Italian.
_FOREIGN_DOSE = (
    r"\b(?:dosis|posolog[ií]a|posologie|dosierung|dosagem|dosaggio|posologia|dose)\b|"
    r"\bcu[aá]nt[oa]s?\b[^.?!]*\b(?:tomar|tomo|dar|usar|debo|puedo)\b|"
    rf"\bcu[aá]nt[oa]s?\s+{_MED}|"
    r"\bcombien\b[^.?!]*\b(?:prendre|dois|puis|donner)\b|"
    r"\bwie\s+(?:viel\w*|oft)\b[^.?!]*\b(?:nehmen|einnehmen|geben)\b|"
    r"\bquant[oaie]s?\b[^.?!]*\b(?:tomar|devo|posso|prendere|prendo|dar)\b|"
    r"\b(?:cada|ogni)\s+cu[aá]nt[oa]\b|\bogni\s+quanto\b|\bà\s+quelle\s+fr[ée]quence\b|"
    r"\bcon\s+qu[eé]\s+frecuencia\b|\bcom\s+que\s+frequ[eê]ncia\b"
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
            rf"prescri(?:be|ption)\b.*\b(?:amount|strength|how\s+much))|{_REGIMEN}|{_FOREIGN_DOSE}",
            re.IGNORECASE,
        ),
    ),
    (
        # About the user's earlier analyses: "has my score changed?", "compare with last time".
        Intent.HISTORY,
        re.compile(
            r"\b(?:last\s+time|(?:previous|earlier|prior|older|past|last|other|first|"
            r"before)\s+(?:analys[ie]s|results?|scans?|x-?rays?|scores?|images?|uploads?|ones?|"
            r"reports?|visits?)|compared?\s+(?:with|to)|comparison|trend|over\s+time|"
            r"since\s+(?:last|then|before|my\s+last)|progress(?:ion|ing)?|"
            r"(?:getting|got|gotten)\s+(?:better|worse)|(?:improv\w*|worse\w*|changed?|"
            r"gone\s+(?:up|down)|went\s+(?:up|down)|increas\w*|decreas\w*|dropped|rose|risen)"
            r"\b[^.?!]{0,30}\b(?:since|from|than|before|previous|last|earlier)|"
            r"(?:has|have|did|is)\s+(?:my|the)\s+(?:score|risk|result|results|lungs?|chest)"
            r"\s+(?:changed?|improved|worsened|gone|got|gotten|moved|dropped|increased|"
            r"decreased|been\s+changing)|all\s+my\s+(?:analys[ie]s|results|scans|x-?rays))\b",
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
_DOSAGE = _RULES[0][1]  # checked on every folded reading first: safety before anything else
_GREETING = re.compile(
    r"^\s*(?:hi|hello|hey|hiya|good\s+(?:morning|afternoon|evening)|greetings|thanks?|"
    r"thank\s+you|cheers|bye|goodbye|ok(?:ay)?|yo)\b[\s!,.?a-z]*$",
    re.IGNORECASE,
)


def detect_intent(message: str) -> Intent:
    """The message's intent; OTHER when no rule matches."""
    variants = [v.strip() for v in folded_variants(message)]
    text = variants[0]
    if not text:
        return Intent.OTHER
    if any(_DOSAGE.search(v) for v in variants):
        return Intent.DOSAGE
    # A greeting only counts when the message is short: "hi, what does my score mean?" is a
    # question about the score.
    if len(text) <= 40 and _GREETING.match(text):
        return Intent.GREETING
    for intent, pattern in _RULES:
        if pattern.search(text):
            return intent
    return Intent.OTHER
