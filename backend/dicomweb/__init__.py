"""DICOMweb: chest X-rays in by STOW-RS, and their results back to the PACS as DICOM SR and a
heatmap series (docs/pacs.md)."""
