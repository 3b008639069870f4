;; Build: wat2wasm garbage.wat -o garbage.wasm   (or ../build.sh for every fixture)
;;
;; garbage: a hostile plugin whose regions are in bounds but whose bytes
;; are not what the ABI says: metadata that does not decode, unknown status
;; codes, OK bodies that do not decode, empty responses. The host's decoder
;; must refuse each with a clear error, and never panic or over-allocate.
;;
;; Features: agent_states; capabilities: clock.
;; storage_metadata, by the host clock (metadata is read once, at Open):
;;   -1 ns  11 bytes of 0xff: an overlong uvarint
;;   -2 ns  the first 10 bytes of the metadata: truncated in the name
;;   -3 ns  the metadata and one trailing byte
;;   -4 ns  a capability count of 2^32 - 1 with no capabilities after it
;;   -5 ns  abi major 70000, past a u16
;;   -6 ns  nothing (len 0)
;;   -7 ns  the metadata, 24 bytes, and configure answers OK with a body
;;   else   the metadata, 24 bytes
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'u'  status 200 (unknown) and the message "garbage: status 200"
;;   'b'  OK, then 11 bytes of 0xff: an overlong uvarint
;;   't'  OK, a valid AgentState, then one trailing byte
;;   's'  OK and nothing else: the AgentState is missing
;;   'n'  OK, then an agent_id whose length is 2^32 - 1
;;   'e'  an empty response (len 0): no status byte at all
;;   'v'  OK, the valid AgentState {agent_id "v"}, the agent it asks for
;; storage_call(delete agent state), by the first byte of the agent ID:
;;   'x'  OK with the body "deleted", where the ABI gives an empty one
;;   else OK
;; Ping and configure are OK (but see -7 ns); any other op is unsupported.
(module
  (import "storagehost_clock" "now" (func $clock_now (result i64)))

  (memory (export "memory") 1)

  ;; Metadata, 24 bytes: abi 1.0, name "garbage", version "1.0.0",
  ;; features 4 (agent_states), capabilities [clock]. The byte after it
  ;; (0x018) is 0, the trailing byte of the -3 variant.
  (data (i32.const 0x000) "\01\00" "\07garbage" "\051.0.0" "\04" "\01" "\05clock")
  ;; 11 bytes of 0xff.
  (data (i32.const 0x020) "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")
  ;; Metadata with 2^32 - 1 capabilities, 22 bytes.
  (data (i32.const 0x040) "\01\00" "\07garbage" "\051.0.0" "\04" "\ff\ff\ff\ff\0f")
  ;; Metadata with abi major 70000, 20 bytes.
  (data (i32.const 0x060) "\f0\a2\04" "\00" "\07garbage" "\051.0.0" "\04" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x080) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; The get answers.
  (data (i32.const 0x100) "\c8" "garbage: status 200")                ;; 'u', 20 bytes
  (data (i32.const 0x140) "\00" "\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff\ff")   ;; 'b', 12 bytes
  (data (i32.const 0x160) "\00" "\01x\00\00\00\00" "\00")               ;; 't', 8 bytes
  (data (i32.const 0x170) "\00")                                       ;; 's', 1 byte
  (data (i32.const 0x180) "\00" "\ff\ff\ff\ff\0f")                     ;; 'n', 6 bytes
  (data (i32.const 0x1a0) "\00" "\01v\00\00\00\00")                     ;; 'v', 7 bytes
  ;; OK answers with a body where the ABI gives none.
  (data (i32.const 0x1c0) "\00" "configured")                          ;; configure, 11 bytes
  (data (i32.const 0x1e0) "\00" "deleted")                             ;; delete 'x', 8 bytes

  (global $REQ_BASE i32 (i32.const 0x1000))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (local $t i64)
    (local.set $t (call $clock_now))
    (if (i64.eq (local.get $t) (i64.const -1))
      (then (return (call $pack (i32.const 0x020) (i32.const 11)))))
    (if (i64.eq (local.get $t) (i64.const -2))
      (then (return (call $pack (i32.const 0) (i32.const 10)))))
    (if (i64.eq (local.get $t) (i64.const -3))
      (then (return (call $pack (i32.const 0) (i32.const 25)))))
    (if (i64.eq (local.get $t) (i64.const -4))
      (then (return (call $pack (i32.const 0x040) (i32.const 22)))))
    (if (i64.eq (local.get $t) (i64.const -5))
      (then (return (call $pack (i32.const 0x060) (i32.const 20)))))
    (if (i64.eq (local.get $t) (i64.const -6))
      (then (return (call $pack (i32.const 0) (i32.const 0)))))
    (call $pack (i32.const 0) (i32.const 24)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xf000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    ;; OpConfigure (2), with a body under a clock of -7 ns
    (if (i32.and (i32.eq (local.get $op) (i32.const 2)) (i64.eq (call $clock_now) (i64.const -7)))
      (then (return (call $pack (i32.const 0x1c0) (i32.const 11)))))
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x080) (i32.const 1)))))
    ;; OpDeleteAgentState (32): the request starts with the agent ID, a string.
    (if (i32.eq (local.get $op) (i32.const 32))
      (then
        (if (i32.eq (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))) (i32.const 0x78)) ;; 'x'
          (then (return (call $pack (i32.const 0x1e0) (i32.const 8)))))
        (return (call $pack (i32.const 0x080) (i32.const 1)))))
    ;; OpGetAgentState (31): the request is the agent ID, a string.
    (if (i32.eq (local.get $op) (i32.const 31))
      (then
        (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
        (if (i32.eq (local.get $sel) (i32.const 0x75)) ;; 'u'
          (then (return (call $pack (i32.const 0x100) (i32.const 20)))))
        (if (i32.eq (local.get $sel) (i32.const 0x62)) ;; 'b'
          (then (return (call $pack (i32.const 0x140) (i32.const 12)))))
        (if (i32.eq (local.get $sel) (i32.const 0x74)) ;; 't'
          (then (return (call $pack (i32.const 0x160) (i32.const 8)))))
        (if (i32.eq (local.get $sel) (i32.const 0x73)) ;; 's'
          (then (return (call $pack (i32.const 0x170) (i32.const 1)))))
        (if (i32.eq (local.get $sel) (i32.const 0x6e)) ;; 'n'
          (then (return (call $pack (i32.const 0x180) (i32.const 6)))))
        (if (i32.eq (local.get $sel) (i32.const 0x65)) ;; 'e'
          (then (return (call $pack (i32.const 0x1a0) (i32.const 0)))))
        (if (i32.eq (local.get $sel) (i32.const 0x76)) ;; 'v'
          (then (return (call $pack (i32.const 0x1a0) (i32.const 7)))))))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
