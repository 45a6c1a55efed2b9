"""Instruction phrasings for the instruct dataset, one bank per task (written for radialog).

Report generation is not here: it always uses `radialog.model.prompt.report_prompt`, the exact
prompt the model sees at inference. Placeholders: `{finding}` (lower case), `{Finding}`
(canonical capitalisation, the form RaDialog's evaluation asks with), `{add}`, `{remove}`.
"""

from __future__ import annotations

BINARY_QA: tuple[str, ...] = (
    "Is there any {Finding}?",
    "Does this chest x-ray show {finding}?",
    "Can you see signs of {finding}?",
    "Is {finding} present?",
    "Would you say the patient has {finding}?",
    "Please answer yes or no: is there {finding}?",
    "Do you find evidence of {finding} here?",
)

LIST_FINDINGS: tuple[str, ...] = (
    "List all the findings in this report.",
    "Which findings are present? Give me the list.",
    "Name every finding you see, separated by commas.",
    "What are the positive findings of this study?",
    "Give a comma-separated list of the abnormalities and devices present.",
    "Enumerate the findings of this x-ray.",
    "Which of the standard chest x-ray findings apply here?",
)

EASY_LANGUAGE: tuple[str, ...] = (
    "Explain this report to me as if I had no medical training.",
    "Rewrite the report in plain, everyday words.",
    "Can you put this report in simple language a patient would understand?",
    "I am not a doctor. What does this report say, in easy words?",
    "Translate the medical terms of this report into simple English.",
    "Describe these results so that a twelve-year-old could follow.",
    "Please restate the report without any jargon.",
)

SUMMARIZE: tuple[str, ...] = (
    "Summarize the report in one sentence.",
    "Give me a short summary of this report.",
    "What are the key points of the report? Keep it brief.",
    "Condense this report into a few bullet points.",
    "Sum up the main results in two sentences at most.",
    "Write a one-line summary of the findings.",
    "Briefly, what does this report conclude?",
)

# region -> phrasings; a region QA sample picks a region, then a phrasing.
REGION_QA: dict[str, tuple[str, ...]] = {
    "heart": (
        "Is the heart normal in size and shape?",
        "What does the report say about the heart?",
        "Are there any cardiac abnormalities?",
    ),
    "lungs": (
        "Are the lungs clear?",
        "Is anything abnormal in the lungs?",
        "Describe the state of the lung fields.",
    ),
    "pleura": (
        "Is there anything wrong with the pleura?",
        "Do you see fluid or air in the pleural space?",
        "What about the pleural spaces?",
    ),
    "bones": (
        "Are the bones intact?",
        "Is there any abnormality of the ribs or spine?",
        "What does the report say about the bony structures?",
    ),
    "devices": (
        "Are there any tubes, lines or devices?",
        "Does the patient have any medical devices in place?",
        "Is any support device visible, and where is it?",
    ),
}

CORRECTION_ADD: tuple[str, ...] = (
    "The patient also has {add}, correct the report.",
    "You missed {add}. Please revise the report.",
    "Add {add} to the report.",
    "The report should also mention {add}. Update it.",
    "There is also {add}; please adjust the report accordingly.",
    "Please include {add} in the report and keep everything else.",
)
CORRECTION_REMOVE: tuple[str, ...] = (
    "The patient does not have {remove}. Update the report.",
    "There is no {remove}, please adapt the report accordingly.",
    "Remove {remove} from the report.",
    "{Remove} is not present; fix the report.",
    "The report wrongly mentions {remove}. Please correct it.",
    "Please revise the report: the patient has no {remove}.",
)
CORRECTION_BOTH: tuple[str, ...] = (
    "Please adapt the report with the following corrections: Include {add} and remove {remove}.",
    "Correct the report: add {add} and take out {remove}.",
    "The report misses {add} and wrongly states {remove}. Please fix both.",
    "Update the report so that it mentions {add} but not {remove}.",
    "Revise the report: the patient has {add}, but no {remove}.",
    "Two corrections: include {add}, and remove {remove}.",
)

REASONING: tuple[str, ...] = (
    "Why do you think the patient has {finding}?",
    "Which signs point to {finding}?",
    "What in the image supports {finding}?",
    "Explain how you concluded that there is {finding}.",
    "What is the evidence for {finding}?",
    "Which observations led to the diagnosis of {finding}?",
    "Justify the finding of {finding}.",
)

IMPRESSION: tuple[str, ...] = (
    "Write the impression section corresponding to this radiology report.",
    "What is the impression for these findings?",
    "Please write the impression section for this report.",
    "Give the radiological impression that goes with these findings.",
    "Conclude the report with an impression.",
    "Based on the findings, write a concise impression.",
)

VIEW: tuple[str, ...] = (
    "From what view was this image taken?",
    "Which projection is this chest x-ray?",
    "Is this a frontal or a lateral view, and which one exactly?",
    "What is the view position of this radiograph?",
    "Name the view of this x-ray (for example PA, AP or lateral).",
    "In which projection was this image acquired?",
)

# Prompts for the base LLM that writes the pseudo ground truth of replay tasks. The report is
# given as text; the instruction is the one the training sample uses.
REPLAY_SINGLE = "Report: {report}\n{instruction}"
REPLAY_CORRECTION_FIRST = "Please write a radiology report for the given x-ray."
REPLAY_CORRECTION_ADD = "Mention {add}."
REPLAY_CORRECTION_REMOVE = "Do not mention {remove}."
REPLAY_CORRECTION = "Please provide an adapted report. {changes} Keep everything else unchanged."
