"""Dataset adapters (IU X-ray, MIMIC-CXR, phantom-iu, custom CSV/JSONL) and the instruct builder.

Every adapter yields `Study` records; `load_dataset(name, split, **kwargs)` picks one by name.
"""

from radialog.data.registry import DATASETS, load_dataset
from radialog.data.study import Study, StudyImage

__all__ = ["DATASETS", "Study", "StudyImage", "load_dataset"]
