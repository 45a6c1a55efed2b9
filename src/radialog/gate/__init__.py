"""The input gate: refuses what is not a chest radiograph before any model work.

`InputGate.check(xray)` -> `GateResult` (accept / warn / refuse, the score, why);
`screen(gate, xray, force=...)` raises `NotAChestXRayError` on a refusal unless forced.
The gate is saved with a model, in its `gate/` folder (`InputGate.for_model_dir`).
"""

from radialog.gate.model import (
    GATE_DIR,
    GateConfig,
    GateResult,
    InputGate,
    NotAChestXRayError,
    gate_notice,
    screen,
)

__all__ = [
    "GATE_DIR",
    "GateConfig",
    "GateResult",
    "InputGate",
    "NotAChestXRayError",
    "gate_notice",
    "screen",
]
