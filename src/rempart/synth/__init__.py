"""A synthetic French health establishment as FHIR R4, for demos, benchmarks and the
scoring of detectors (docs/synthetic-hospital.md).

Imports only ``rempart.fhir``-level knowledge: no storage, no server. Start from
:class:`rempart.synth.generator.Generator`; write files with :mod:`.output`.
"""
