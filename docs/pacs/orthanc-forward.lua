-- Orthanc as the bridge for modalities and PACSes that send by DIMSE (C-STORE): every chest
-- radiograph (CR, DX) that arrives over DICOM is sent on to MedSight by STOW-RS, through the
-- DICOMweb peer named "medsight" in Orthanc's configuration. MedSight's results come back by
-- STOW-RS over HTTP and are SR/OT series, so they are never forwarded again.
-- Tested by tests/e2e/test_pacs_e2e.py; see docs/pacs.md.

function OnStoredInstance(instanceId, tags, metadata, origin)
   if origin["RequestOrigin"] ~= "DicomProtocol" then
      return
   end
   local modality = tags["Modality"]
   if modality ~= "CR" and modality ~= "DX" then
      return
   end
   -- Asynchronous: a job, so that the C-STORE is answered without waiting for MedSight.
   RestApiPost("/dicom-web/servers/medsight/stow",
               '{"Resources": ["' .. instanceId .. '"], "Asynchronous": true}')
end
