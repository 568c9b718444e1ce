{
  "targets": [
    {
      "target_name": "nowait_read",
      "sources": ["nowait_read.c"],
      "cflags": ["-O2", "-Wall"]
    }
  ]
}
