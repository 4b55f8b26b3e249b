# FindNCCL
# --------
# Finds NVIDIA's NCCL library.
#
# Hints (searched in this order): NCCL_ROOT (CMake or environment variable),
# /usr/local/cuda, the CUDA toolkit found by find_package(CUDAToolkit), the
# usual system paths, and last the NCCL that pip installs with PyTorch (the
# nvidia-nccl-cu* wheel: <site-packages>/nvidia/nccl/{include,lib}, found by
# asking python3; NCCL_NO_PYTHON=ON skips that). The library is looked for
# next to the header first, so the two come from the same NCCL; the wheel
# ships only libnccl.so.2 (no libnccl.so), which is accepted too.
#
# Defines:
#   NCCL_FOUND, NCCL_INCLUDE_DIRS, NCCL_LIBRARIES, NCCL_VERSION
#   imported target NCCL::NCCL
include(FindPackageHandleStandardArgs)

set(_nccl_hints)
foreach(_root IN ITEMS "${NCCL_ROOT}" "$ENV{NCCL_ROOT}")
  if(_root)
    list(APPEND _nccl_hints "${_root}")
  endif()
endforeach()
list(APPEND _nccl_hints /usr/local/cuda)
if(NOT CUDAToolkit_FOUND)
  find_package(CUDAToolkit QUIET)
endif()
if(CUDAToolkit_FOUND)
  list(APPEND _nccl_hints ${CUDAToolkit_TARGET_DIR} ${CUDAToolkit_LIBRARY_ROOT})
  foreach(_dir IN ITEMS ${CUDAToolkit_INCLUDE_DIRS} ${CUDAToolkit_LIBRARY_DIR})
    get_filename_component(_dir_parent "${_dir}" DIRECTORY)
    list(APPEND _nccl_hints "${_dir_parent}")
  endforeach()
endif()

find_path(NCCL_INCLUDE_DIR
  NAMES nccl.h
  HINTS ${_nccl_hints}
  PATH_SUFFIXES include)
if(NOT NCCL_INCLUDE_DIR AND NOT NCCL_NO_PYTHON)
  # PyTorch's pip wheels bring their own NCCL; a GPU machine without a system NCCL often has it.
  find_program(_nccl_python NAMES python3 python NO_CACHE)
  if(_nccl_python)
    execute_process(
      COMMAND "${_nccl_python}" -c "import nvidia.nccl as m; print(list(m.__path__)[0])"
      OUTPUT_VARIABLE _nccl_py_root OUTPUT_STRIP_TRAILING_WHITESPACE
      ERROR_QUIET RESULT_VARIABLE _nccl_py_rc TIMEOUT 30)
    if(_nccl_py_rc EQUAL 0 AND IS_DIRECTORY "${_nccl_py_root}")
      list(APPEND _nccl_hints "${_nccl_py_root}")
      find_path(NCCL_INCLUDE_DIR NAMES nccl.h HINTS "${_nccl_py_root}" PATH_SUFFIXES include NO_DEFAULT_PATH)
    endif()
  endif()
endif()
set(_nccl_lib_hints ${_nccl_hints})
if(NCCL_INCLUDE_DIR)
  get_filename_component(_nccl_inc_root "${NCCL_INCLUDE_DIR}" DIRECTORY)
  list(PREPEND _nccl_lib_hints "${_nccl_inc_root}")
endif()
find_library(NCCL_LIBRARY
  NAMES nccl libnccl.so.2 NAMES_PER_DIR
  HINTS ${_nccl_lib_hints}
  PATH_SUFFIXES lib lib64 lib/x86_64-linux-gnu targets/x86_64-linux/lib)

if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_version_lines
    REGEX "^#define[ \t]+NCCL_(MAJOR|MINOR|PATCH)[ \t]+[0-9]+")
  foreach(_part MAJOR MINOR PATCH)
    string(REGEX MATCH "NCCL_${_part}[ \t]+([0-9]+)" _m "${_nccl_version_lines}")
    set(NCCL_VERSION_${_part} "${CMAKE_MATCH_1}")
  endforeach()
  if(NOT NCCL_VERSION_MAJOR STREQUAL "")
    set(NCCL_VERSION "${NCCL_VERSION_MAJOR}.${NCCL_VERSION_MINOR}.${NCCL_VERSION_PATCH}")
  endif()
endif()

find_package_handle_standard_args(NCCL
  REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR
  VERSION_VAR NCCL_VERSION)

if(NCCL_FOUND)
  set(NCCL_INCLUDE_DIRS "${NCCL_INCLUDE_DIR}")
  set(NCCL_LIBRARIES "${NCCL_LIBRARY}")
  if(NOT TARGET NCCL::NCCL)
    add_library(NCCL::NCCL UNKNOWN IMPORTED)
    set_target_properties(NCCL::NCCL PROPERTIES
      IMPORTED_LOCATION "${NCCL_LIBRARY}"
      INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
  endif()
endif()

mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
unset(_nccl_hints)
unset(_nccl_lib_hints)
