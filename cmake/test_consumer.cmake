# The "consumer" test (see tests/CMakeLists.txt): proves a downstream project
# can use weft both ways the docs promise.
#   (a) cmake --install <weft build> --prefix <WORK_DIR>/prefix
#   (b) configure + build + run examples/consumer with find_package(weft CONFIG)
#   (c) configure + build + run examples/consumer with add_subdirectory(weft)
# Same generator, compiler and flags as the weft build that runs the test.
cmake_minimum_required(VERSION 3.25)

foreach(var WEFT_SOURCE_DIR WEFT_BINARY_DIR WORK_DIR GENERATOR CXX_COMPILER)
  if(NOT DEFINED ${var} OR "${${var}}" STREQUAL "")
    message(FATAL_ERROR "test_consumer.cmake: -D${var}=... is required")
  endif()
endforeach()

set(_config "${BUILD_CONFIG}")
if(_config STREQUAL "")
  set(_config Release)
endif()

function(step what)
  string(JOIN " " _shown ${ARGN})
  message("consumer: ${what}\n  $ ${_shown}")
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE _rc)
  if(NOT _rc EQUAL 0)
    message(FATAL_ERROR "consumer: FAILED: ${what} (exit ${_rc})")
  endif()
endfunction()

# Options passed to every consumer configure, so it matches the parent build.
set(_common -G "${GENERATOR}" "-DCMAKE_CXX_COMPILER=${CXX_COMPILER}" "-DCMAKE_BUILD_TYPE=${_config}")
if(NOT "${MAKE_PROGRAM}" STREQUAL "")
  list(APPEND _common "-DCMAKE_MAKE_PROGRAM=${MAKE_PROGRAM}")
endif()
if(NOT "${CXX_COMPILER_LAUNCHER}" STREQUAL "")
  list(APPEND _common "-DCMAKE_CXX_COMPILER_LAUNCHER=${CXX_COMPILER_LAUNCHER}")
endif()
if(NOT "${CXX_FLAGS}" STREQUAL "")
  list(APPEND _common "-DCMAKE_CXX_FLAGS=${CXX_FLAGS}")
endif()
if(NOT "${EXE_LINKER_FLAGS}" STREQUAL "")
  list(APPEND _common "-DCMAKE_EXE_LINKER_FLAGS=${EXE_LINKER_FLAGS}")
endif()

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(_prefix "${WORK_DIR}/prefix")

# (a) install the weft build tree under test
step("install weft into ${_prefix}"
  "${CMAKE_COMMAND}" --install "${WEFT_BINARY_DIR}" --prefix "${_prefix}" --config "${_config}")
if(NOT EXISTS "${_prefix}/include/weft")
  message(FATAL_ERROR "consumer: FAILED: the install has no include/weft folder")
endif()
file(GLOB_RECURSE _configs "${_prefix}/*/weftConfig.cmake")
if(NOT _configs)
  message(FATAL_ERROR "consumer: FAILED: the install has no weftConfig.cmake")
endif()

function(consumer mode)
  set(_bin "${WORK_DIR}/${mode}")
  step("configure the consumer (${mode} mode)"
    "${CMAKE_COMMAND}" -S "${WEFT_SOURCE_DIR}/examples/consumer" -B "${_bin}"
    ${_common} "-DWEFT_CONSUMER_MODE=${mode}" ${ARGN})
  step("build the consumer (${mode} mode)"
    "${CMAKE_COMMAND}" --build "${_bin}" --config "${_config}")
  set(_exe "${_bin}/weft_consumer")
  if(NOT EXISTS "${_exe}")
    set(_exe "${_bin}/${_config}/weft_consumer")   # multi-config generators
  endif()
  step("run the consumer (${mode} mode)" "${_exe}")
endfunction()

# (b) find_package(weft CONFIG) against the installed prefix
set(_pkg_args "-DCMAKE_PREFIX_PATH=${_prefix}")
if(WEFT_CUDA AND NOT "${CUDA_COMPILER}" STREQUAL "")
  # weftConfig.cmake finds CUDAToolkit; point it at the same toolkit.
  get_filename_component(_cuda_bin "${CUDA_COMPILER}" DIRECTORY)
  get_filename_component(_cuda_root "${_cuda_bin}" DIRECTORY)
  list(APPEND _pkg_args "-DCUDAToolkit_ROOT=${_cuda_root}")
endif()
consumer(package ${_pkg_args})

# (c) add_subdirectory(weft) from the source tree, with the same weft options
set(_sub_args "-DWEFT_SOURCE_DIR=${WEFT_SOURCE_DIR}")
if(WEFT_CUDA)
  string(REPLACE "|" ";" _archs "${CUDA_ARCHITECTURES}")
  list(APPEND _sub_args -DWEFT_CUDA=ON "-DCMAKE_CUDA_COMPILER=${CUDA_COMPILER}")
  if(NOT _archs STREQUAL "")
    set(ENV{CUDAARCHS} "${_archs}")   # a list survives the command line badly
  endif()
endif()
if(NOT "${DEPS_PREFIX}" STREQUAL "")
  list(APPEND _sub_args "-DWEFT_DEPS_PREFIX=${DEPS_PREFIX}")
endif()
consumer(subdirectory ${_sub_args})

message("consumer: PASS (package and subdirectory modes)")
