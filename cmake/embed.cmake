# ef_embed_files(TARGET_VAR OUT_C SYMBOL_PREFIX FILES...)
# Generates a C file holding each file's bytes as a NUL-terminated array, so
# binaries carry their schema and API description instead of looking for them
# on disk at run time.
function(ef_embed_files out_c)
  set(files ${ARGN})
  add_custom_command(
    OUTPUT ${out_c}
    COMMAND ${CMAKE_COMMAND} -DOUT=${out_c} "-DFILES=${files}"
            -P ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    DEPENDS ${files} ${PROJECT_SOURCE_DIR}/cmake/embed_run.cmake
    COMMENT "Embedding ${out_c}")
endfunction()
