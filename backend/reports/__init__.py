"""Reports of one analysis: the clinical PDF and the FHIR R4 export."""
