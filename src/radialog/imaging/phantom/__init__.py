"""Synthetic chest radiograph phantoms (PA, AP, lateral) with controllable CheXpert findings.

These images are procedurally rendered, NOT real radiographs. They exist so that the whole
pipeline (classifier, adapter, report generation, metrics) can be trained and tested end to
end without restricted patient data: each finding has a visible, varied signature that a
small CNN can learn, while global statistics (exposure, body habitus, rotation) vary per
seed so that no finding is given away by mean brightness alone.

Conventions: bright = dense (MONOCHROME2); the patient's right is on the image left (PA).
All geometry is in normalised coordinates in [-1, 1] (see `draw.Canvas`). The same seed
gives the same anatomy, exposure and noise whatever the findings, so adding a finding only
changes the pixels that finding touches. Lateral views (`lateral.py`) show the same patient
as the frontal views of a seed. PA and AP bytes are frozen by a hash test: phantom datasets
cache them on disk and models are trained on them, so never change their output.

Modules: `anatomy` (the patient of a seed and what findings change in it), `frontal` and
`lateral` (the two projections), `exposure` (film response and noise), `draw` (primitives),
`render` (`render_phantom`, the one entry point).
"""

from radialog.imaging.phantom.anatomy import VIEWS
from radialog.imaging.phantom.render import PHANTOM_FINDINGS, render_phantom

__all__ = ["PHANTOM_FINDINGS", "VIEWS", "render_phantom"]
