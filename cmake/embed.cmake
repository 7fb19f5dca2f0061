# ef_embed_files(OUT_C FILES...)
# Generates a C file holding each file's bytes as a NUL-terminated array, so
# binaries carry their schema and API description instead of looking for them
# on disk at run time.
function(ef_embed_files out_c)
  set(files ${ARGN})
  # A list cannot cross the command line as is: join it with '|'.
  string(REPLACE ";" "|" joined "${files}")
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out_c} "-DFILES=${joined}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    COMMENT "Embedding ${out_c}" VERBATIM)
endfunction()
