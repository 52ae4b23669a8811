"""LoReFT, one home: the method (settings, flags, checkpoint; no torch at import) in
``method.py``, its model ``ReftModel`` in ``model.py``."""

from steering.methods.reft.method import Reft, reft_positions

__all__ = ["Reft", "reft_positions"]
