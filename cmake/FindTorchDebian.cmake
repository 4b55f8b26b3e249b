# FindTorchDebian
# ---------------
# Finds libtorch as Debian's libtorch-dev installs it: ATen/c10 headers in /usr/include, the C++
# API in /usr/include/torch/csrc/api/include, libtorch.so, libtorch_cpu.so and libc10.so in the
# multiarch library folder. Used by weft-bench to compare with libtorch; weft never needs it.
#
# Debian also ships a TorchConfig.cmake, but it loads Caffe2's configuration (protobuf, CUDA
# helpers, compile flags for every consumer); this module only imports the libraries.
# TorchDebian_ROOT (CMake or environment variable) is a hint.
#
# Defines:
#   TorchDebian_FOUND, TorchDebian_INCLUDE_DIRS, TorchDebian_LIBRARIES, TorchDebian_VERSION
#   imported target TorchDebian::torch
include(FindPackageHandleStandardArgs)

set(_torch_hints)
foreach(_root IN ITEMS "${TorchDebian_ROOT}" "$ENV{TorchDebian_ROOT}")
  if(_root)
    list(APPEND _torch_hints "${_root}")
  endif()
endforeach()

find_path(TorchDebian_INCLUDE_DIR NAMES ATen/ATen.h c10/core/TensorImpl.h
  HINTS ${_torch_hints} PATH_SUFFIXES include)
find_path(TorchDebian_API_INCLUDE_DIR NAMES torch/version.h
  HINTS ${_torch_hints} PATH_SUFFIXES torch/csrc/api/include include/torch/csrc/api/include)
foreach(_lib IN ITEMS torch torch_cpu c10)
  find_library(TorchDebian_${_lib}_LIBRARY NAMES ${_lib} HINTS ${_torch_hints} PATH_SUFFIXES lib lib64)
  mark_as_advanced(TorchDebian_${_lib}_LIBRARY)
endforeach()

if(TorchDebian_API_INCLUDE_DIR AND EXISTS "${TorchDebian_API_INCLUDE_DIR}/torch/version.h")
  file(STRINGS "${TorchDebian_API_INCLUDE_DIR}/torch/version.h" _torch_version_lines
    REGEX "^#define TORCH_VERSION_(MAJOR|MINOR|PATCH) [0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "TORCH_VERSION_${_part} ([0-9]+)" _m "${_torch_version_lines}")
    set(_torch_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  set(TorchDebian_VERSION "${_torch_MAJOR}.${_torch_MINOR}.${_torch_PATCH}")
endif()

find_package_handle_standard_args(TorchDebian
  REQUIRED_VARS TorchDebian_torch_LIBRARY TorchDebian_torch_cpu_LIBRARY TorchDebian_c10_LIBRARY
    TorchDebian_INCLUDE_DIR TorchDebian_API_INCLUDE_DIR
  VERSION_VAR TorchDebian_VERSION)

if(TorchDebian_FOUND)
  set(TorchDebian_INCLUDE_DIRS "${TorchDebian_INCLUDE_DIR}" "${TorchDebian_API_INCLUDE_DIR}")
  set(TorchDebian_LIBRARIES
    "${TorchDebian_torch_LIBRARY}" "${TorchDebian_torch_cpu_LIBRARY}" "${TorchDebian_c10_LIBRARY}")
  if(NOT TARGET TorchDebian::torch)
    add_library(TorchDebian::torch INTERFACE IMPORTED)
    # SYSTEM: libtorch's headers do not pass weft's -Wall -Wextra -Wpedantic.
    set_target_properties(TorchDebian::torch PROPERTIES
      INTERFACE_SYSTEM_INCLUDE_DIRECTORIES "${TorchDebian_INCLUDE_DIRS}"
      INTERFACE_INCLUDE_DIRECTORIES "${TorchDebian_INCLUDE_DIRS}"
      INTERFACE_LINK_LIBRARIES "${TorchDebian_LIBRARIES}")
  endif()
endif()
mark_as_advanced(TorchDebian_INCLUDE_DIR TorchDebian_API_INCLUDE_DIR)
