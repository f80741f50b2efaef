#include "CTarsSys.h"
