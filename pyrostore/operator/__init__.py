"""The Kubernetes operator: TopicArchive makes an archiver StatefulSet, ReplayJob makes a replay Job.

Handlers (``handlers``) are thin; manifests (``manifests``) and conditions (``conditions``) come from pure
functions, and ``status`` does the reading of archives and Kafka.
"""
