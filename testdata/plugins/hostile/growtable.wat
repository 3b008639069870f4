;; Build: wat2wasm growtable.wat -o growtable.wasm   (or ../build.sh for every fixture)
;;
;; growtable: a table without a maximum size, and a function that grows it
;; by 2^27 elements at a time (1 GiB per call, outside Limits.MemoryPages).
;; The host refuses it before compiling it (host/hostile_load_test.go).
(module
  (memory (export "memory") 1)
  (table 1 funcref)
  (func (export "grow") (result i32)
    (table.grow 0 (ref.null func) (i32.const 134217728))))
