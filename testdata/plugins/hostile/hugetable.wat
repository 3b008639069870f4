;; Build: wat2wasm hugetable.wat -o hugetable.wasm   (or ../build.sh for every fixture)
;;
;; hugetable: a module of a few dozen bytes whose funcref table has 2^27
;; elements, which every instance would allocate (1 GiB, outside
;; Limits.MemoryPages). The host refuses it before compiling it
;; (host/hostile_load_test.go).
(module
  (memory (export "memory") 1)
  (table 134217728 134217728 funcref))
