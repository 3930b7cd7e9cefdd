"""Pure FHIR R4 knowledge: validation, resources, bundles, outcomes, patch.

Nothing here imports a web framework, a database or a security module.
"""
