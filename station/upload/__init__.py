"""The regulator hand-off: every stored inspection uploaded to the 公安部 supervision
interface and the environmental networking platform, durably (docs/regulator.md).

``tables`` (the field tables, data: ``psb.yaml``, ``env.yaml``), ``render`` (field
values), ``psb`` / ``env`` / ``wire`` (the two platforms' codecs and clients), ``plan``
(which calls, in which order), ``schema`` / ``store`` (the rows and their attempts),
``locks`` (what the platform would lock) and ``courier`` (passing it on to the lanes),
``alarms``, ``service`` (the loops), ``cli``, ``preflight``. Run by ``lanegw station
run`` when ``upload.enabled``, or alone: ``python -m station.upload --config FILE``.
"""
