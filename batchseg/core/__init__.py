"""The bottom layer every package builds on: image references, plan types, fault points.

Nothing here imports another batchseg package except ``batchseg.errors``.
"""
