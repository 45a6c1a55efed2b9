"""radialog: chest X-ray report generation and dialog (RaDialog design).

Not a medical device. Every generated report must be reviewed by a radiologist.
"""

__version__ = "0.1.0"

DISCLAIMER = (
    "AI-generated draft for research use only. Not a medical device: "
    "a radiologist must review this report before any clinical use."
)
