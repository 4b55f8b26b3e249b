# FindOpenBLAS
# ------------
# Finds OpenBLAS with its CBLAS interface (weft's CPU GEMM engine, see ops/cpu/gemm.hpp).
#
# Headers: OpenBLAS's own package configuration first (Debian's libopenblas-dev ships
# OpenBLASConfig.cmake, which sets OpenBLAS_INCLUDE_DIRS and OpenBLAS_LIBRARIES), then a plain
# search for openblas_config.h. The library: see below. OpenBLAS_ROOT (CMake or environment variable)
# is a hint. The header must be OpenBLAS's cblas.h (next to openblas_config.h): netlib's
# declares no openblas_set_num_threads.
#
# Defines:
#   OpenBLAS_FOUND, OpenBLAS_INCLUDE_DIRS, OpenBLAS_LIBRARIES, OpenBLAS_VERSION
#   imported target OpenBLAS::OpenBLAS
include(FindPackageHandleStandardArgs)

find_package(OpenBLAS CONFIG QUIET)

set(_openblas_hints)
foreach(_root IN ITEMS "${OpenBLAS_ROOT}" "$ENV{OpenBLAS_ROOT}")
  if(_root)
    list(APPEND _openblas_hints "${_root}")
  endif()
endforeach()

# The configuration's folders, else a search (Debian puts the headers of each threading
# variant in include/<triplet>/openblas-<variant>).
find_path(OpenBLAS_INCLUDE_DIR
  NAMES openblas_config.h
  HINTS ${OpenBLAS_INCLUDE_DIRS} ${_openblas_hints}
  PATH_SUFFIXES include include/openblas openblas
    x86_64-linux-gnu/openblas-pthread x86_64-linux-gnu/openblas-openmp x86_64-linux-gnu/openblas-serial
    include/x86_64-linux-gnu/openblas-pthread include/x86_64-linux-gnu/openblas-openmp)
# The library: OpenBLAS_ROOT, then the default paths, and only then the configuration's own
# folder. On Debian the default paths hold <libdir>/libopenblas.so, which follows
# update-alternatives and needs no RUNPATH, so the variant selected there (pthreads or OpenMP)
# is the one loaded at run time; the configuration names the pthreads variant's folder, which
# would be baked into every binary as RUNPATH and override that choice.
find_library(OpenBLAS_LIBRARY
  NAMES openblas
  HINTS ${_openblas_hints}
  PATH_SUFFIXES lib lib64)
if(NOT OpenBLAS_LIBRARY)
  set(_openblas_lib_hints)
  foreach(_lib IN LISTS OpenBLAS_LIBRARIES)
    if(IS_ABSOLUTE "${_lib}")
      get_filename_component(_dir "${_lib}" DIRECTORY)
      list(APPEND _openblas_lib_hints "${_dir}")
    endif()
  endforeach()
  find_library(OpenBLAS_LIBRARY NAMES openblas HINTS ${_openblas_lib_hints})
endif()

if(OpenBLAS_INCLUDE_DIR AND NOT EXISTS "${OpenBLAS_INCLUDE_DIR}/cblas.h")
  set(OpenBLAS_INCLUDE_DIR "OpenBLAS_INCLUDE_DIR-NOTFOUND" CACHE PATH "OpenBLAS headers" FORCE)
endif()
if(NOT OpenBLAS_VERSION AND OpenBLAS_INCLUDE_DIR)
  file(STRINGS "${OpenBLAS_INCLUDE_DIR}/openblas_config.h" _openblas_version_line
    REGEX "OPENBLAS_VERSION")
  string(REGEX MATCH "[0-9]+\\.[0-9]+\\.[0-9]+" OpenBLAS_VERSION "${_openblas_version_line}")
endif()

find_package_handle_standard_args(OpenBLAS
  REQUIRED_VARS OpenBLAS_LIBRARY OpenBLAS_INCLUDE_DIR
  VERSION_VAR OpenBLAS_VERSION)

if(OpenBLAS_FOUND)
  set(OpenBLAS_INCLUDE_DIRS "${OpenBLAS_INCLUDE_DIR}")
  set(OpenBLAS_LIBRARIES "${OpenBLAS_LIBRARY}")
  if(NOT TARGET OpenBLAS::OpenBLAS)
    add_library(OpenBLAS::OpenBLAS UNKNOWN IMPORTED)
    set_target_properties(OpenBLAS::OpenBLAS PROPERTIES
      IMPORTED_LOCATION "${OpenBLAS_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${OpenBLAS_INCLUDE_DIR}")
  endif()
endif()
mark_as_advanced(OpenBLAS_INCLUDE_DIR OpenBLAS_LIBRARY)
