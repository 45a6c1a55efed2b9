"""Our mention and trigger vocabulary (regular expressions over lower-cased sentences).

Written for radialog in the spirit of the CheXpert/NegBio labelers, not copied from them.
Conventions we chose (and test):
- Granulomas (calcified or not) are Lung Lesions, as radiologists label IU reports (CheXpert's
  list has no granuloma); "prior granulomatous disease" alone names no lesion.
- A density explained by soft tissue, vessels, a pectus or a hernia is neither Lung Opacity
  nor Lung Lesion; a nodular or calcified density is a lesion, not an opacity.
- IU's masked word right before a finding is a hedge ("xxxx atelectasis"): uncertain.
  The full conventions: docs/LABELING.md.
- "Lungs are clear" says nothing about Lung Opacity (CheXpert leaves it blank); "clear of
  consolidation" negates consolidation.
- Consolidation, atelectasis and edema do not imply Lung Opacity, and consolidation does
  not imply Pneumonia: each label needs its own mention, as in CheXpert's output.
- "Borderline" or "prominent" heart size is uncertain Cardiomegaly; "upper limits of normal" /
  "top normal" is a negative (the sentence says the size is normal; OpenI's manual coding
  agrees in >100 of >100 reports).
- A rib deformity is an uncertain (old) Fracture.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# How a matched phrase gets its value: from the sentence context (negation/uncertainty
# triggers around it), or fixed by the phrase itself ("normal heart size" is a negative).
CONTEXT, FIXED_NEGATIVE, FIXED_UNCERTAIN = "context", "negative", "uncertain"


@dataclass(frozen=True)
class MentionPattern:
    label: str
    regex: re.Pattern[str]
    kind: str = CONTEXT


def _p(label: str, pattern: str, kind: str = CONTEXT) -> MentionPattern:
    return MentionPattern(label, re.compile(pattern), kind)


# Words allowed between a subject ("the heart") and its state ("is enlarged"), within a clause.
_GAP = r"(?:[\s,]+(?!but\b|however\b|and\s+(?:there|the)\b)[a-z'/-]+){0,6}?[\s,]+"
# Enlargement must sit in the subject's own clause: "heart size is normal, large hernia" is
# not cardiomegaly, so this gap allows no commas.
_GAP_TIGHT = r"(?:\s+(?!but\b|however\b|and\b)[a-z'/-]+){0,5}?\s+"
_NORMAL = (
    r"(?:normal|within (?:the )?normal limits|within (?:the )?limits of normal|within the normal range|unremarkable|"
    r"not enlarged|not widened|normal in size|of normal size|stable and normal)"
)
_BORDERLINE = r"(?:borderline|equivocal(?:ly)?|mildly prominent|prominent)"
_ENLARGED = r"(?:enlarged|enlargement|increased|large|widened|widening|wide)"

_HEART = (
    r"(?:heart(?: size)?|cardiac (?:silhouette|size|shadow|contours?|diameter)|"
    r"cardiac(?= and mediastinal)|cardiothoracic ratio)"
)
_MEDIASTINUM = (
    r"(?:cardio-?mediastinal (?:silhouette|contours?|shadow|width|size)|mediastinum|"
    r"mediastinal (?:silhouette|contours?|width|size|shadow)|superior mediastinum|"
    r"(?<=cardiac and )mediastinal (?:silhouette|contours?))"
)

MENTIONS: tuple[MentionPattern, ...] = (
    # Enlarged Cardiomediastinum
    _p("Enlarged Cardiomediastinum", r"\bwiden(?:ed|ing) (?:of the )?(?:superior )?mediastin\w*"),
    _p("Enlarged Cardiomediastinum", r"\bmediastinal (?:widening|enlargement|prominence)"),
    _p(
        "Enlarged Cardiomediastinum",
        r"\b(?:enlarged|prominent) (?:the )?(?:cardio-?)?mediastin(?:um|al (?:silhouette|contours?))",
    ),
    _p("Enlarged Cardiomediastinum", rf"\b{_MEDIASTINUM}{_GAP_TIGHT}{_ENLARGED}\b"),
    _p("Enlarged Cardiomediastinum", rf"\b{_MEDIASTINUM}{_GAP}{_NORMAL}", FIXED_NEGATIVE),
    _p("Enlarged Cardiomediastinum", rf"\bnormal (?:size )?{_MEDIASTINUM}", FIXED_NEGATIVE),
    _p(
        "Enlarged Cardiomediastinum",
        rf"\b{_MEDIASTINUM}{_GAP_TIGHT}{_BORDERLINE}\b",
        FIXED_UNCERTAIN,
    ),
    # Cardiomegaly
    _p("Cardiomegaly", r"\bcardiomegaly\b|\bcardiac enlargement\b|\bcardiomyopathy\b"),
    _p(
        "Cardiomegaly",
        r"\b(?:enlarged|large|increased) (?:size of the )?(?:heart|cardiac (?:silhouette|size|shadow|contour))",
    ),
    _p("Cardiomegaly", r"\benlargement of the (?:heart|cardiac silhouette)"),
    _p(
        "Cardiomegaly",
        r"\bincrease(?:d)? (?:in )?(?:the )?(?:size of the heart|heart size|cardiac size)",
    ),
    _p("Cardiomegaly", rf"\b{_HEART}{_GAP_TIGHT}{_ENLARGED}\b"),
    _p("Cardiomegaly", rf"\b{_HEART}{_GAP}{_NORMAL}", FIXED_NEGATIVE),
    _p("Cardiomegaly", rf"\bnormal (?:{_HEART}|cardiac)\b", FIXED_NEGATIVE),
    _p("Cardiomegaly", rf"\b{_HEART}{_GAP_TIGHT}{_BORDERLINE}\b", FIXED_UNCERTAIN),
    _p("Cardiomegaly", rf"\b{_BORDERLINE} (?:{_HEART}|cardiomegaly)\b", FIXED_UNCERTAIN),
    # Lung Opacity
    _p(
        "Lung Opacity",
        r"\bopaci(?:ty|ties|fication|fications|fied)\b|\binfiltrat(?:e|es|ion|ions|ive)\b|"
        r"\bair[- ]?space (?:disease|process|opacit\w*|filling)|\bhaz(?:e|iness|y)\b|"
        r"\bground[- ]glass\b|\bdensit(?:y|ies)\b(?<!nodular density)(?<!nodular densities)"
        r"(?<!calcific density)(?<!calcific densities)(?<!calcified density)"
        r"(?<!calcified densities)(?<!soft tissue density)(?<!tubular densities)|"
        r"\bdecreased translucency\b|"
        r"\breticul(?:ar|onodular|ation)\b|\binterstitial (?:markings?|opacit\w*|pattern|"
        r"prominence|thickening|disease|changes?|lung disease)\b|\bincreased (?:lung |interstitial |"
        r"pulmonary )?markings\b|\bscar(?:ring|s)?\b|\bfibrotic\b|\bfibrosis\b",
    ),
    # Lung Lesion
    _p(
        "Lung Lesion",
        r"\bgranulom(?:a|as|ata)\b|\bresidu(?:a|als?) of (?:prior |old )?granulomatous|"
        r"\bcalcific densit(?:y|ies)\b|\bnodul(?:e|es)\b|\bnodular(?! interstitial)\b|\bmass(?:es)?\b|\blesions?\b(?<!lytic lesion)(?<!lytic lesions)"
        r"(?<!sclerotic lesion)(?<!sclerotic lesions)(?<!bone lesion)(?<!bony lesion)(?<!skin lesion)|\bneoplasm\w*|\btumou?rs?\b|\bcarcinoma\b|\bmalignan\w+|"
        r"\bmetasta\w+|\bcavitary\b|\bcavitation\b|\blump\b",
    ),
    # Edema
    _p(
        "Edema",
        r"\bo?edema\b|\b(?:pulmonary |vascular |venous )congestion\b|\bchf\b|\bheart failure\b|"
        r"\bfluid overload\b|\bcephalization\b|\bkerley\b|\bvascular (?:engorgement|redistribution)\b|"
        r"\bengorged\b",
    ),
    # Consolidation
    _p("Consolidation", r"\bconsolidat(?:ion|ions|ed|ive)\b"),
    # Pneumonia
    _p(
        "Pneumonia",
        # Healed granulomatous disease is not pneumonia.
        r"\b(?:broncho)?pneumonias?\b|\bpneumonitis\b|\binfection\b(?<!granulomatous infection)|"
        r"\binfectious\b(?<!granulomatous infectious)|"
        r"\binflammatory (?:process|change)",
    ),
    # Atelectasis
    _p(
        "Atelectasis",
        r"\batelecta\w*|\b(?:lung|lobe|lobar|segmental|basilar) collapse\b|"
        r"\bcollapse of the (?:\w+ )?(?:\w+ )?(?:lung|lobe)",
    ),
    # Pneumothorax
    _p("Pneumothorax", r"\b(?:hydro)?pneumothora(?:x|ces)\b|\bptx\b|\bpleural air\b"),
    # Pleural Effusion
    _p(
        "Pleural Effusion",
        r"\b(?<!pericardial )effusions?\b|\bpleural fluid\b|\bhydrothorax\b|\bhydropneumothorax\b|"
        r"\bblunt(?:ing|ed) of the (?:\w+ )?(?:costophrenic|cp) (?:angles?|sulcus|sulci)|"
        r"\b(?:costophrenic|cp) (?:angles?|sulcus|sulci)(?: (?:is|are))? (?:\w+ )?blunt(?:ed|ing)\b",
    ),
    # Pleural Other
    _p(
        "Pleural Other",
        r"\bpleural (?:thickening|plaques?|calcifications?|scarring|abnormality)|\bfibrothorax\b|"
        r"\bpleural-parenchymal scarring|\bpleural based (?:opacity|thickening)",
    ),
    # Fracture
    _p("Fracture", r"\bfractures?d?\b|\bfx\b"),
    # A wedge or compression deformity of a vertebral body is a compression fracture.
    _p("Fracture", r"\b(?:wedge|compression) (?:\w+ )?deformit(?:y|ies)\b"),
    _p(
        "Fracture",
        r"\brib deformit(?:y|ies)\b|\bdeformit(?:y|ies) of the (?:\w+ ){0,2}ribs?\b",
        FIXED_UNCERTAIN,
    ),
    # Support Devices
    _p(
        "Support Devices",
        r"\b(?:endotracheal|et|nasogastric|ng|og|orogastric|feeding|chest|enteric|tracheostomy|"
        r"dobhoff|gastric|g|j|thoracostomy|drainage) tubes?\b|\b(?:picc|central venous|central|"
        r"ij|jugular|subclavian|swan[- ]ganz|venous|arterial|midline|dialysis|hickman|pa) "
        r"(?:lines?|catheters?)\b|\bpicc\b|\bcatheters?\b|\bpacemakers?\b|\bpacers?\b|"
        r"\b(?:pacing|pacer|icd|defibrillator|transvenous|epicardial) (?:leads?|wires?|device|generator)\b|"
        r"\baicd\b|\bdefibrillators?\b|\b(?:sternotomy|sternal|cerclage|surgical) (?:wires?|sutures?)\b|"
        r"\bsternotomy\b|\b(?:surgical|vascular|cholecystectomy)? ?clips?\b|\bprosthe(?:sis|ses|tic)\b|"
        r"\bstents?\b|\bvalve replacement\b|\bport-?a-?cath\b|\b(?:chest )?port\b|\bdrains?\b|"
        r"\btracheostomy\b|\bloop recorder\b|\bhardware\b|\bscrews?\b|\bfixation (?:plates?|rods?)\b|"
        r"\bmonitoring (?:leads?|wires?|devices?)\b|\b(?:ecg|ekg) leads?\b|\bleads\b|\bcoils?\b|"
        r"\blvad\b|\bballoon pump\b|\biabp\b|\bvertebroplasty\b|\bkyphoplasty\b|\bspinal fusion\b|"
        r"\bshunt\b|\btubing\b|\bsurgical xxxx\b|\binjection (?:port|xxxx)\b",
    ),
)

# Statements that the whole study is normal. They do not set labels (No Finding follows the
# CheXpert rule); they are kept as evidence for No Finding.
NORMAL_STUDY = re.compile(
    r"\bno (?:acute|active|significant|evidence of (?:acute|active)) (?:\w+ )?(?:cardiopulmonary|"
    r"intrathoracic|pulmonary|chest|lung|disease|process|abnormalit|findings?)\w*|"
    r"\bnormal (?:chest|study|exam|examination|radiograph|x-?ray|frontal and lateral)\b|"
    r"\b(?:chest|study|exam) (?:is |appears )?(?:normal|unremarkable|negative)\b|\bnegative chest\b|"
    r"\bno (?:radiographic )?(?:evidence of )?(?:acute )?(?:active )?disease\b"
)

# --- context triggers -------------------------------------------------------------------

# Phrases that look like negation but are not ("no change in the cardiomegaly").
PSEUDO = (
    r"no (?:significant |substantial |appreciable |definite |marked |major |interval |"
    r"significant interval |other )*(?:change|increase|decrease|progression|worsening|"
    r"improvement|difference)s?|not (?:significantly |substantially |markedly )?(?:changed|"
    r"increased|decreased|improved|worsened)|without (?:significant |interval )?change|"
    r"not only|no longer (?:increasing|enlarging)|gram-negative|no cause|"
    # IU masking ate the participle: "has not xxxx since" is "has not changed since".
    r"(?:has|have) not xxxx"
)
# Uncertainty phrases that contain a negation word: checked before negation.
NEGATED_UNCERTAINTY = (
    r"cannot (?:be )?(?:entirely |completely |definitely )?(?:excluded?|ruled? out|exclude)|"
    r"can ?not (?:be )?(?:excluded?|ruled? out)|can't (?:be )?(?:excluded?|ruled? out)|"
    r"(?:could|can|may) not (?:be )?(?:entirely |completely )?(?:excluded?|ruled? out)|"
    r"not (?:be )?(?:entirely |completely |definitely )?(?:excluded|ruled out)|"
    r"difficult to (?:exclude|rule out)|not (?:entirely |completely )?clear"
)
PRE_NEGATION = (
    r"\bno\b|\bnot\b|\bnor\b|\bwithout\b|\bfree of\b|\bclear of\b|\bnegative for\b|"
    r"\babsence of\b|\babsent\b|\bresolution of\b|\bresolved\b|\bremoval of\b|\brule[sd]? out\b|"
    r"\bexclude[sd]?\b|\bnegative\b|\bdenies\b|\bnever\b|\bnone\b|\binstead of\b|\brather than\b"
)
PRE_UNCERTAINTY = (
    r"\bmay\b|\bmight\b|\bcould\b|\bpossibl[ey]\b|\bprobabl[ey]\b|\blikely\b|\bperhaps\b|"
    r"\bsuggest\w*|\bconcern\w*|\bworrisome\b|\bsuspic\w+|\bsuspect\w*|\bquestion\w*|\?|"
    r"\bborderline\b|\bequivocal\b|\bindeterminate\b|\buncertain\b|\bpresum\w+|"
    r"\bdifferential\b|\bversus\b|\bvs\b|\bconsider\w*|\bcannot exclude\b|\bappear(?:s|ing)? to\b|"
    r"\bfavou?r(?:s|ed)?\b|\bpotential\b|\bsubtle\b|\bdeveloping\b|\bearly\b|\bevaluat\w+ for\b|"
    # IU X-ray de-identification often ate "likely" in "most likely": "most XXXX".
    r"\bmimic\w*|\bmost xxxx\b|\bconsideration\b|\bapparent\b|\band/or\b"
)
# After the mention, in the same clause ("effusion is not seen", "pneumonia is possible").
POST_NEGATION = re.compile(
    r"^(?:\s+[a-z'/-]+){0,5}?\s+(?:is|are|was|were|has|have|had|been|be|appears?|seems?)?\s*"
    r"(?:within (?:the )?(?:normal limits|limits of normal)|not\b|no longer\b|resolved\b|absent\b|removed\b|excluded\b|ruled out\b|negative\b|"
    r"cleared\b|gone\b|free\b)"
)
POST_UNCERTAINTY = re.compile(
    r"^(?:\s+[a-z'/-]+){0,5}?\s+(?:(?:is|are|was|were|be)\s+)?(?:"
    + NEGATED_UNCERTAINTY
    + r"|possible\b|possibly\b|likely\b|suspected\b|questioned\b|questionable\b|versus\b|vs\b|"
    r"and/or\b|"
    r"(?:in|on) the differential\b|(?:a |another )?consideration\b|considered\b|"
    # "opacity may represent atelectasis": the opacity itself is certain.
    r"not (?:well )?(?:excluded|seen well)|\?|(?:may|might|could)\b(?!\s+(?:also\s+)?(?:represent|"
    r"reflect|indicate|relate|suggest|be (?:due|secondary|related|from|caused|compatible|consistent|"
    r"a sign|the result))))"
)
# A clause ends here: negation and uncertainty do not cross it.
CLAUSE_BREAK = re.compile(
    r"[;:]|\bbut\b|\bhowever\b|\balthough\b|\bthough\b|\bwhich\b|\bexcept\b|\bapart from\b|"
    r"\baside from\b|\bwhereas\b|\bwhile\b|\bnow\b|\bstill\b|\bthere (?:is|are|has|have)\b|"
    r"\band (?:the|there)\b|\bwith (?:the )?exception of\b|\bpersist\w*|\bremains?\b|"
    r"\bconsistent with\b|\bis (?:seen|noted|present)\b|\bare (?:seen|noted|present)\b"
)
# "No pneumothorax, small effusions": a comma followed by a new finding's modifier ends the
# clause, unless the rest reads as a list ("no consolidation, large effusion, or pneumothorax").
COMMA_BREAK = re.compile(
    r",\s*(?=(?:mild|mildly|small|moderate|moderately|large|minimal|trace|tiny|stable|"
    r"persistent|increas\w*|decreas\w*|new|improv\w*|worse\w*|unchanged|the|a|an|this|these|"
    r"it|otherwise|however|likely|possibl\w*|probabl\w*|chronic|old|healed|calcified|"
    r"bilateral|left|right|slight|slightly|marked|markedly|severe|patchy|focal|streaky)\b)"
)
LIST_CONTINUES = re.compile(r"\b(?:or|nor)\b|/")

# IU de-identification masked many hedges ("likely", "possibly", "which may represent") as
# "xxxx": one right before a finding (at most one word between) makes it uncertain. Device
# and anatomy words it stands for are not affected: they are matched, not hedged.
# A verb or conjunction after it shows the masked word was a noun ("pulmonary xxxx are engorged").
MASKED_HEDGE = re.compile(
    r"\bxxxx(?:\s+(?:represent\w*|reflect\w*|likely|be))?\s+"
    r"(?:(?!(?:are|is|was|were|has|have|and|or)\s)[a-z-]+\s+)?$"
)
# A density or opacity the report explains by something that is not lung disease.
EXPLAINED_AWAY = re.compile(
    r"\bsoft tissue\b|\bpectus\b|\bvascular shadows?\b|\boverlap\w*|\bnipple\b|"
    r"\bartifact\w*|\bhiatal hernia\b|\battenuation\b|\bpericardial fat\b"
)
EXPLAINABLE = frozenset({"Lung Opacity", "Lung Lesion"})
