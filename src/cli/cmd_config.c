// SPDX-License-Identifier: MIT
/* placeholder: being written (helper config) */
typedef int placeholder_cmd_config;
