"""Readings out to the systems doctors' practices use, as FHIR R4 (issue 21).

`mapping.py` turns stored readings into resources (one module, so that a regional platform's
format, the 2016 CDA shared documents for one, can sit beside it as another); `search.py` finds
readings for the API's searches and the bulk export; `cloud_bridge/api/fhir.py` serves them and
`doorstep export fhir` writes the export from the command line.
"""
