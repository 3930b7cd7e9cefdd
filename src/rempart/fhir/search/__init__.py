"""FHIR R4 search (§3.1.1): the search parameters of each type and the values they index."""
