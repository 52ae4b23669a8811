"""Joint adaptation, one home: the method (settings, flags, optimizer groups, checkpoint; no
torch at import) in ``method.py``, ``JointModel`` and the orthogonality callback in
``model.py``."""

from steering.methods.joint.method import Joint, parse_frequency

__all__ = ["Joint", "parse_frequency"]
