"""The cluster model: settings schema, validated topology and generated secrets.

Everything here runs on the control machine, offline: it reads the inventory and
group_data, never a host's facts.
"""
