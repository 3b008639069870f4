;; Build: wat2wasm echo.wat -o echo.wasm   (from testdata/plugins/gohostile)
;;
;; echo: a plugin that answers whatever the host asks it to. For every op
;; but ping and configure, the request must be a single string (the ID of
;; OpGetAgentState or OpGetAlert: a uvarint length, then the bytes); the
;; plugin skips the length and returns the bytes after it, unchanged, as
;; its whole response. So st.GetAgentState(ctx, string(b)) makes the host
;; read b as the plugin's response: a status byte, then a body.
;; host/fuzz_test.go (FuzzPluginResponse) drives the host's response
;; parsing this way.
;;
;; Features: alerts, agent_states; capabilities: none.
;; Ops: ping, configure -> OK; any other -> the request's string, echoed.
(module
  (memory (export "memory") 1)

  ;; Metadata, 15 bytes: abi 1.0, name "echo", version "1.0.0",
  ;; features 6 (alerts | agent_states), no capabilities.
  (data (i32.const 0) "\01\00" "\04echo" "\051.0.0" "\06" "\00")
  ;; The OK response: one status byte.
  (data (i32.const 16) "\00")

  ;; Requests are written at 1024; the response is a region inside it.
  (global $REQ_BASE i32 (i32.const 1024))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 15)))

  ;; Grows memory until $size bytes fit after REQ_BASE; traps if it cannot.
  (func (export "storage_reserve") (param $size i32) (result i32)
    (local $pages i32)
    (local.set $pages (i32.add (i32.shr_u (i32.add (local.get $size) (global.get $REQ_BASE))
                                          (i32.const 16))
                               (i32.const 1)))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then unreachable))))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $skip i32)
    ;; OpPing (1) and OpConfigure (2): OK.
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 16) (i32.const 1)))))
    ;; Skip the uvarint: every byte with the high bit set, then one more.
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $skip) (local.get $len)))
        (local.set $skip (i32.add (local.get $skip) (i32.const 1)))
        (br_if $next
          (i32.and (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.sub (local.get $skip) (i32.const 1))))
                   (i32.const 0x80)))))
    (call $pack (i32.add (global.get $REQ_BASE) (local.get $skip))
                (i32.sub (local.get $len) (local.get $skip))))
)
