"""The FHIR REST interactions (FHIR R4 §3.1 RESTful API), one per module.

Handlers are framework-free: they take a :class:`~rempart.rest.http.FhirRequest`
and the :class:`~rempart.rest.context.Context`, talk to the storage port, and
return a :class:`~rempart.rest.http.FhirResponse`. ``web/`` adapts them to ASGI;
batch and transaction bundles will dispatch to the same functions.
"""
