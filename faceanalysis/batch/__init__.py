"""``faceanalysis batch``: many videos and frame folders analysed on Ray, results as Parquet tables.

The only part of the project that imports Ray: ``engine`` (the driver) and ``worker`` (the actors). The rest is
plain Python the driver and the actors share: ``inputs`` (what to analyse), ``tables`` (the output schemas and
rows), ``store`` (the output folder: part files, resume, the merged tables), ``progress`` and ``command``
(the command line).
"""
