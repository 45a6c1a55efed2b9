"""RaDialog's image preprocessing sizes: the one definition that the transform, model configs
and checkpoint converters all read.

Shorter side to 512, then a centre crop of 448 for the report branch's encoder and 488 for the
classifier's own encoder (as in the original code).
"""

RESIZE = 512
ENCODER_CROP = 448
CLASSIFIER_CROP = 488
