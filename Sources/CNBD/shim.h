#ifndef DISKVAULT_CNBD_SHIM_H
#define DISKVAULT_CNBD_SHIM_H
#include <libnbd.h>
#endif
