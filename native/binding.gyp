{
  "targets": [
    {
      "target_name": "kasane_native",
      "sources": [
        "src/addon.c",
        "src/checksum.c",
        "src/datapath.c",
        "src/egress.c",
        "src/executor.c",
        "src/executor_inside.c",
        "src/executor_outside.c",
        "src/esp.c",
        "src/gro.c",
        "src/gso.c",
        "src/ipv6.c",
        "src/replay.c",
        "src/table.c",
        "src/udp.c",
        "src/uso.c"
      ],
      "cflags": ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "cflags!": ["-fno-exceptions"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"],
      "libraries": ["-lpthread"],
      "conditions": [
        ["OS!='linux'", { "type": "none" }]
      ]
    }
  ]
}
