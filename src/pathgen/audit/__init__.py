"""The audit of a run's pairs: patch and caption quality flags, shortcuts, and the report.

See :mod:`pathgen.audit.stage` (the stage), :mod:`~pathgen.audit.flags` (flag names, read back by
export), :mod:`~pathgen.audit.patch_quality`, :mod:`~pathgen.audit.caption_quality` and
:mod:`~pathgen.audit.shortcuts` (the measures).
"""
