"""What the project knows, without torch: releases and versions, the outcome vocabulary,
devices and cells, the cases and generated examples, the expectations, the case record
and the results file. Every other floor builds on this one; it imports none of them.
"""
